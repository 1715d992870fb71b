"""hepanav.fluorescence: real-time ICG near-infrared fluorescence for liver resection.

Modules: ``sources`` (frames from files, sequences, videos, cameras; layouts),
``unmix`` (fluorescence from vendor overlay videos), ``display`` (gain, overlay, colour
maps), ``detect`` (background and lesion detection), ``measure`` (TBR, CNR, pattern),
``track`` (motion and lesion ids), ``analyze`` (one frame), ``stream`` (a whole stream
with its outputs), ``margin`` (transection-surface check), ``report``, ``commands``
(``hepanav fluoro``), ``demo``. See docs/fluorescence.md.
"""
