"""Image classification with the same anchor losses (issue 6).

Modules are imported by :mod:`sar_plugin` as they land.
"""
