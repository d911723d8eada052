"""CamVid in the SegNet split and 11-class labelling."""
import os.path as osp
from typing import List, Optional, Sequence

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .checks import NonEmptySplitMixin


@DATASETS.register_module()
class CamVidDataset(NonEmptySplitMixin, BaseSegDataset):
    """CamVid (Brostow et al. 2009) with the SegNet 11-class labelling.

    Layout (the SegNet tutorial's copy, as in ``../shared/data/camvid``)::

        data_root/img_dir/{train,val,test}/*.png   RGB 360x480
        data_root/ann_dir/{train,val,test}/*.png   uint8 label ids 0..11

    Label 11 is *void* ("Unlabelled") and is mapped to ``ignore_index``
    (255) when the annotation is loaded, so it is excluded from training and
    evaluation. The 11 classes are naturally long-tailed (Road ~32% of the
    training pixels, Bicyclist ~0.3%).

    A split that yields no sample raises a :class:`FileNotFoundError` naming
    the directory or split file and the suffixes searched
    (:class:`~sar_plugin.datasets.checks.NonEmptySplitMixin`).

    Args:
        sequences (Sequence[str], optional): Keep only the frames of these
            videos, by file-name prefix (``0001TP``, ``0006R0``, ``0016E5``,
            ``Seq05VD``: a frame is ``<sequence>_<frame>.png``), so that a
            split made from the training folder never puts frames of one
            video on both sides. A sequence with no frame raises, naming it
            and the folder. ``None`` keeps every frame.
        **kwargs: :class:`~mmseg.datasets.BaseSegDataset` arguments.
    """
    METAINFO = dict(
        classes=('Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree',
                 'SignSymbol', 'Fence', 'Car', 'Pedestrian', 'Bicyclist'),
        palette=[[128, 128, 128], [128, 0, 0], [192, 192, 128],
                 [128, 64, 128], [60, 40, 222], [128, 128, 0],
                 [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
                 [0, 128, 192]])
    VOID_LABEL = 11

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 sequences: Optional[Sequence[str]] = None,
                 **kwargs) -> None:
        if isinstance(sequences, str):
            sequences = [sequences]
        self.sequences = None if sequences is None else tuple(sequences)
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

    @staticmethod
    def sequence_of(path: str) -> str:
        """The video a frame belongs to: its file name up to the first
        ``_``."""
        return osp.basename(path).split('_', 1)[0]

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        if self.sequences is None:
            return data_list
        found = {self.sequence_of(d['img_path']) for d in data_list}
        missing = [s for s in self.sequences if s not in found]
        if missing:
            raise FileNotFoundError(
                f'CamVidDataset: sequences={list(self.sequences)} but '
                f'{self.data_prefix.get("img_path")} has no frame of '
                f'{missing} (it has {sorted(found)})')
        return [d for d in data_list
                if self.sequence_of(d['img_path']) in self.sequences]

    @classmethod
    def get_label_map(cls, new_classes: Optional[tuple] = None) -> dict:
        """MMSeg's class-subset label map, plus void (11) -> 255."""
        label_map = super().get_label_map(new_classes) or {}
        label_map = dict(label_map)
        label_map[cls.VOID_LABEL] = 255
        return label_map
