"""BBC news behind Seldon Core's Python wrapper: the model MLServer's NewsRuntime serves.

X is an array of texts; the answer is one row of class probabilities per text. The network,
vocabulary and features come from the model folder's own ``cdl_serving`` package (folder in
CDL_MODEL_FOLDER), so both servers run the same files through the same code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from model_folder import ModelFolder

# a 400 with a reason, as MLServer's BadRequest; a plain exception would be a 500
from seldon_core.flask_utils import SeldonMicroserviceException as BadRequest


class NewsModel(ModelFolder):
    def load_model(self) -> None:
        import torch
        from cdl_serving.news import load_network
        from cdl_serving.text import Vocabulary

        # as NewsRuntime.load_model: one intra-op thread unless model.json says otherwise
        torch.set_num_threads(max(1, int(self.meta.get("threads", 1))))
        self.vocab = Vocabulary.load(self.artifacts / "vocab.txt")
        self.network = load_network(self.artifacts, self.meta)

    def predict(self, X: Any, features_names: Any = None) -> np.ndarray:
        import torch

        texts = [str(text) for text in np.asarray(X).reshape(-1)]
        if not texts or not all(text.strip() for text in texts):
            raise BadRequest("send one or more non-empty texts")
        with torch.no_grad():
            logits = self.network(torch.from_numpy(self.vocab.counts(texts)))
        return torch.softmax(logits, dim=1).numpy()
