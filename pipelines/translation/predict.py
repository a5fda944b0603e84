"""The translation task's Keras back ends: a run directory or `.keras` file (encoder and decoder step as
traced functions; its tokenizers ride in its metadata) behind the runtime's `Translator`, and the
exported string-in / string-out SavedModel (greedy decoding inside its graph)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.artifacts import Artifact, load_predictor, load_task_model
from sensorium.runtime.errors import UsageError
from sensorium.runtime.tokenizer import tokenizers_from
from sensorium.runtime.translation import Encode, Step, Translator, model_length_penalty


def load(model: Artifact | str | Path) -> Translator:
    """The translator of a run directory, `.keras` file, SavedModel or `.tflite`."""
    return load_predictor(model, Translator, keras=_from_keras, saved_model=SavedModelTranslator.load)


def _from_keras(artifact: Artifact) -> Translator:
    from sensorium.models.translation import training_objects

    training_objects()
    path = artifact.keras_path
    model, meta = load_task_model(path, Translator.task)
    info = meta["info"]
    encode, step = keras_functions(model)
    return Translator(encode, step, tokenizers_from(str(path), info=info), int(info["max_source_length"]),
                      int(info["max_target_length"]), str(path),
                      tuned_length_penalty=model_length_penalty(info, str(path)))


class SavedModelTranslator(Translator):
    """The exported string-in / string-out SavedModel (`serving_default`: greedy decoding in the graph)."""

    @classmethod
    def load(cls, artifact: Artifact | str | Path, batch_size: int = 32) -> SavedModelTranslator:
        from sensorium.pipelines.common.text_graph import load_text_saved_model

        path = artifact.path if isinstance(artifact, Artifact) else Path(artifact)
        translator = cls(_no_step, _no_step, None, 0, 0, str(path), max_batch=batch_size, beam=1,
                         runtime="saved_model")
        translator.serve = load_text_saved_model(path)
        return translator

    def translate(self, texts: list[str], beam: int | None = None) -> list[str]:
        import tensorflow as tf

        if int(beam or self.beam) != 1:
            raise UsageError(f"{self.source}: a translation SavedModel decodes greedily inside its graph; use "
                             "beam 1, or the run directory or .tflite for beam search")
        out: list[str] = []
        for i in range(0, len(texts), self.max_batch):
            got = self.serve(text=tf.constant(texts[i : i + self.max_batch]))["translation"].numpy()
            out += [t.decode("utf-8") for t in got]
        return out


def _no_step(*_: Any) -> np.ndarray:
    raise RuntimeError("a translation SavedModel runs its own decoding loop")


def keras_functions(model: Any) -> tuple[Encode, Step]:
    """`encode` and `decode_step` of a Keras translator as traced functions (one trace each)."""
    import tensorflow as tf

    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    d = int(encoder.output.shape[-1])
    enc = tf.function(lambda s: encoder(s, training=False), input_signature=[tf.TensorSpec((None, None), tf.int32)])

    @tf.function(input_signature=[tf.TensorSpec((None, None, d), tf.float32), tf.TensorSpec((None, None), tf.int32),
                                  tf.TensorSpec((None, None), tf.int32)])
    def step(memory, source_ids, prefixes):
        logits = decoder([memory, source_ids, prefixes], training=False)  # (N, t, V)
        return tf.nn.log_softmax(logits[:, -1, :], axis=-1)  # (N, V)

    return (lambda s: enc(tf.constant(s)).numpy(),
            lambda m, s, p: step(tf.constant(m), tf.constant(s), tf.constant(p)).numpy())
