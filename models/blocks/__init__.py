"""Reusable Keras 3 layers: conv blocks, heads, image preprocessing/augmentation, audio front end,
generative encoder/decoder blocks, an LSTM with its input projection out of the loop,
sentiment-lexicon features, task metadata.

Every layer is registered for serialisation under the ``sensorium`` package, so a ``.keras``
file that uses them loads with ``keras.saving.load_model(path, safe_mode=True)`` once this
module has been imported.
"""

from sensorium.models.blocks.audio import LogMelSpectrogram, SpecAugment, frames_for_samples
from sensorium.models.blocks.conv import (
    ConvBNAct,
    DepthwiseSeparableConv,
    InvertedResidual,
    ResidualBlock,
    SqueezeExcite,
)
from sensorium.models.blocks.generative import ConvDecoder, ConvEncoder, PerImageMSE, PixelNoise, Sampling
from sensorium.models.blocks.heads import ClassifierHead
from sensorium.models.blocks.image_preprocessing import ImageAugmentation, ImagePreprocessing
from sensorium.models.blocks.lexicon import BranchDropout, PieceValence
from sensorium.models.blocks.metadata import TaskMetadata, read_task_metadata
from sensorium.models.blocks.recurrent import HoistedLSTM
from sensorium.models.blocks.transformer import (
    MaskedMeanPooling,
    TokenAndPositionEmbedding,
    TransformerDecoder,
    TransformerEncoder,
    attention_mask,
    padding_mask,
)

__all__ = [
    "BranchDropout",
    "PieceValence",
    "ClassifierHead",
    "ConvBNAct",
    "ConvDecoder",
    "ConvEncoder",
    "DepthwiseSeparableConv",
    "HoistedLSTM",
    "ImageAugmentation",
    "ImagePreprocessing",
    "InvertedResidual",
    "LogMelSpectrogram",
    "PerImageMSE",
    "PixelNoise",
    "Sampling",
    "SpecAugment",
    "frames_for_samples",
    "ResidualBlock",
    "SqueezeExcite",
    "TaskMetadata",
    "read_task_metadata",
    "MaskedMeanPooling",
    "TokenAndPositionEmbedding",
    "TransformerDecoder",
    "TransformerEncoder",
    "attention_mask",
    "padding_mask",
]
