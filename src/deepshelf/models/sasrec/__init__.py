"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018), trained with full-softmax
cross-entropy over every position of every sequence (Klenitskiy & Vasilev, RecSys 2023, "SASRec+").

`config.py`: the typed config and the network's constructor arguments built from it (shared with the
content-aware SASRec); `network.py`: `SASRecNetwork`, the math (item ids (B, T) -> output vectors (B, T, d));
`batching.py`: training windows dealt into batches; `estimator.py`: `SASRec`, which owns the loss, device and
epochs and scores raw histories.
"""

from deepshelf.models.sasrec.config import SASRecConfig, network_args
from deepshelf.models.sasrec.estimator import SASRec
from deepshelf.models.sasrec.network import SASRecNetwork

__all__ = ["SASRec", "SASRecConfig", "SASRecNetwork", "network_args"]
