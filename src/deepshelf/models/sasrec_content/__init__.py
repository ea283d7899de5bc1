"""Content-aware SASRec: an item is its id embedding plus a projection of its text vector (issue 4, part 6).

`item = warm(i) * id_embedding(i) + W @ text_vector(i)`: the id part carries what events taught about the item,
the content part what its words say. A product with no events at all (added to the catalogue after training)
has no id part, but its content part puts it where similar products sit, so it is recommendable at once.
Training hides the id part of a random share of items in every step (`id_dropout`, as in DropoutNet, Volkovs
et al. 2017), so the content projection must carry real signal on its own instead of idling behind the ids.

A 64-d projection keeps what a text says about taste, not which product line it names, and next items in a shop
are often the same line or brand as the last one. So each logit also gets a learned multiple of the text
similarity between the newest history item and the candidate, in the top `similarity_dim` singular directions
of the catalogue's text vectors (dot products there approximate the full 384-d cosine). It is appended to the
output vectors: `[h, w * s(last)] . [item, s(item)] = h . item + w * s(last) . s(item)`, so training, the
full-softmax loss and ANN serving all stay one dot product.

How a product without events is scored beside the others is set after training, on validation (`calibration`,
searched fast by `coldsearch`): its sequence-model score is scaled, its newest-item similarity raised or lowered,
its text's cosine to the history's recency-weighted text added with a weight, and a bias added, as extra output
columns that only products without events fill. Products with events keep their scores, and scoring stays one dot
product.

The item table covers the whole catalogue: the training events' items first (same indices as the events), then
every catalogue product without events ("cold"), so `score()` ranks cold products like any other. Everything
else (sequence encoder, loss, training loop, persistence) is `deepshelf.models.sasrec`'s.

`network.py`: the network (item table, similarity term, cold imputation); `text.py`: the text vectors and their
singular directions, computed before training; `calibration.py`: the settings chosen on validation after
training; `coldsearch.py`: the fast validation of many cold-scoring settings; `config.py`: its config;
`estimator.py`: `ContentSASRec`.
"""

from deepshelf.models.sasrec_content.config import ContentSASRecConfig
from deepshelf.models.sasrec_content.estimator import ContentSASRec
from deepshelf.models.sasrec_content.network import ContentSASRecNetwork

__all__ = ["ContentSASRec", "ContentSASRecConfig", "ContentSASRecNetwork"]
