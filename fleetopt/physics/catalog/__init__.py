"""GPU, model and calibrated-profile catalogs: records (:mod:`.specs`) and the loaded, extensible
:class:`Catalog` (:mod:`.catalog`; ``docs/catalog.md``)."""

from fleetopt.physics.catalog.catalog import Catalog, builtin_calibrated, default_catalog
from fleetopt.physics.catalog.specs import CalibratedSpec, GPUSpec, ModelSpec

__all__ = ["CalibratedSpec", "Catalog", "GPUSpec", "ModelSpec", "builtin_calibrated",
           "default_catalog"]
