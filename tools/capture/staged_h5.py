"""An HDF5 file written under a temporary name beside its destination and renamed into place when
complete (capture.py's and pooled.py's writers): a failed or killed capture leaves nothing at the path.
Deterministic bytes: libver earliest, no timestamps, objects created in a fixed order by the caller."""

import os
from pathlib import Path


class StagedH5:
    def __init__(self, path: Path, error):
        """error: the exception class for what the user can fix (raised with the path)."""
        import h5py
        self.path, self.error = Path(path), error
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            self.f = h5py.File(self.tmp, "w", libver="earliest", track_order=False)
        except OSError as e:
            raise error(f"cannot create {self.tmp}: {e}") from None

    def commit(self):
        try:
            self.f.close()
            os.chmod(self.tmp, 0o644)
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.abort()
            raise self.error(f"cannot write {self.path}: {e}") from None

    def abort(self):
        try:
            if self.f.id.valid:
                self.f.close()
        finally:
            if self.tmp.exists():
                self.tmp.unlink()
