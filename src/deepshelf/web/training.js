// The demo's "still training" line: `deepshelf demo` serves as soon as its fast models are trained and trains the
// slow ones (SASRec, the content model) in the background (apps/demo_training.py). This asks GET /demo/status
// until nothing is left and says what is still training; on a server without it (404) it stays hidden.
const line = document.getElementById("training-status");

async function poll() {
  let status;
  try {
    const response = await fetch("/demo/status");
    if (!response.ok) return;
    status = await response.json();
  } catch {
    setTimeout(poll, 10000);  // the server restarting: ask again later
    return;
  }
  const still = status.still_training || [];
  const failed = Object.keys(status.failed || {});
  if (still.length) {
    line.textContent = `Still training in the background: ${still.join(", ")}. Serving ${status.serving} meanwhile; ` +
      "each is swapped in when it is better on validation.";
  } else if (failed.length) {
    line.textContent = `Background training failed for ${failed.join(", ")}; serving ${status.serving}.`;
  } else if ((status.done || []).length) {
    line.textContent = `Every model is trained; serving ${status.serving}.`;
  }
  line.hidden = !line.textContent;
  if (still.length) setTimeout(poll, 5000);
}

if (line) poll();
