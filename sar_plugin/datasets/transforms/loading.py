"""``LoadAnnotations`` whose errors name the label file.

Registered under MMSeg's name in :mod:`sar_plugin.registry`, so every config
with ``default_scope='sar_plugin'`` saying ``dict(type='LoadAnnotations')``
(ours and MMSeg's Cityscapes / ADE20K base configs alike) gets it; MMSeg's
own registry keeps MMSeg's.
"""
from typing import Optional

from mmseg.datasets.transforms import LoadAnnotations as _MMSegLoadAnnotations

from ...registry import TRANSFORMS
from ..checks import check_label_map

__all__ = ['LoadAnnotations']


def _with_message(err: Exception, message: str) -> Exception:
    """A new exception of ``err``'s type (or a ``RuntimeError`` when that
    type cannot be built from a message alone) carrying ``message``."""
    try:
        new = type(err)(message)
    except Exception:
        new = RuntimeError(message)
    return new


@TRANSFORMS.register_module(name='LoadAnnotations')
class LoadAnnotations(_MMSegLoadAnnotations):
    """MMSeg's ``LoadAnnotations``, with errors that name the file at fault.

    A strict superset of :class:`mmseg.datasets.transforms.LoadAnnotations`
    (a subclass; same arguments plus ``check_image_size``; on valid data the
    same ``gt_seg_map``). It is registered as ``'LoadAnnotations'`` in
    ``sar_plugin.registry.TRANSFORMS`` (scope ``sar_plugin``). On top of
    MMSeg's loading it:

    - re-raises any error of MMSeg's loading (e.g. the decoder's ``OSError:
      image file is truncated``) as the same exception type with
      ``results['seg_map_path']`` in its message (the original is chained);
    - refuses a label map that is not single-channel (e.g. a colour-palette
      export saved as RGB), with a :class:`ValueError` naming the file;
    - refuses, when the image was loaded first (``results['ori_shape']`` is
      set, e.g. by ``LoadImageFromFile``), a label whose ``(H, W)`` differs
      from the image's, with a :class:`ValueError` naming both files and
      both shapes. ``ori_shape`` is the image as loaded, so a ``Resize``
      between the two loads (MMSeg's test pipelines) does not matter, and
      ``reduce_zero_label`` / ``label_map`` only change label values.
      Without the check MMSeg would crop/pad or resize both and train on
      misaligned labels.

    Args:
        reduce_zero_label (bool, optional): As in MMSeg. Defaults to None
            (the dataset's setting).
        backend_args (dict, optional): As in MMSeg. Defaults to None.
        imdecode_backend (str): As in MMSeg. Defaults to 'pillow'.
        check_image_size (bool): Refuse a label whose size differs from its
            image's. Defaults to True.
    """

    def __init__(self,
                 reduce_zero_label: Optional[bool] = None,
                 backend_args: Optional[dict] = None,
                 imdecode_backend: str = 'pillow',
                 check_image_size: bool = True) -> None:
        super().__init__(
            reduce_zero_label=reduce_zero_label,
            backend_args=backend_args,
            imdecode_backend=imdecode_backend)
        self.check_image_size = check_image_size

    def transform(self, results: dict) -> dict:
        """Load ``results['seg_map_path']`` as MMSeg does, then check it.

        Args:
            results (dict): Result dict from the dataset (and earlier
                transforms).

        Returns:
            dict: ``results`` with ``gt_seg_map`` (``H x W`` uint8) added to
            it and to ``seg_fields``.

        Raises:
            ValueError: For a label map that has channels or whose size
                differs from its image's.
            Exception: Any error of MMSeg's loading, of the same type, with
                the label file named.
        """
        path = results.get('seg_map_path')
        try:
            results = super().transform(results)
        except Exception as err:
            if path is None or str(path) in str(err):
                raise
            raise _with_message(
                err, f"Failed to load the label map '{path}': "
                f'{type(err).__name__}: {err}') from err
        shape = results.get('ori_shape') if self.check_image_size else None
        check_label_map(
            results['gt_seg_map'], path, results.get('img_path'), shape)
        return results

    def __repr__(self) -> str:
        return (f'{super().__repr__()[:-1]}, '
                f'check_image_size={self.check_image_size})')
