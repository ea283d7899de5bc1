// The storefront's attribution: which recommendation list a product was opened from (README, "How a shop
// reads its numbers").
// A card click remembers (for this tab) the `recommendation_id` of the list the card was in; the product page
// takes it and sends it with its view and cart events. A product opened any other way (its URL, the activity
// panel) sends none: only a click on a shown list (recommendations, similar, search results) is that list's click.
const CLICKED_FROM = "deepshelf.clickedFrom";

export function rememberClick(itemId, recommendationId) {
  sessionStorage.setItem(CLICKED_FROM, JSON.stringify({ item_id: itemId, recommendation_id: recommendationId }));
}

/** The `recommendation_id` the product `itemId` was just opened from ("" when it was not opened from a list). */
export function takeClick(itemId) {
  let clicked = null;
  try {
    clicked = JSON.parse(sessionStorage.getItem(CLICKED_FROM) || "null");
  } catch {
    /* nothing usable */
  }
  sessionStorage.removeItem(CLICKED_FROM);
  return clicked && clicked.item_id === itemId ? String(clicked.recommendation_id || "") : "";
}
