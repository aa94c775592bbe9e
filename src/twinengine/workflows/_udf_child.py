"""Child side of ``run_udf``: load the input, run the user's function, write the output (see ``udf``)."""

from __future__ import annotations

import importlib.util
import pickle
import sys
import traceback
from pathlib import Path


def limit_memory(memory_bytes: int) -> None:
    if memory_bytes > 0:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def main(folder: Path) -> int:
    with (folder / "input.pkl").open("rb") as fh:
        payload = pickle.load(fh)
    spec = importlib.util.spec_from_file_location("udf_code", folder / "udf_code.py")
    if spec is None or spec.loader is None:
        print("cannot load the UDF code", file=sys.stderr)
        return 2
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        func = getattr(module, "apply_datacube", None) or getattr(module, "udf", None)
        if func is None:
            print("the UDF defines neither apply_datacube(cube, context) nor udf(data, context)")
            return 3
        result = func(payload["data"], payload["context"] or {})
    except BaseException:
        traceback.print_exc(limit=5, file=sys.stdout)
        return 1
    with (folder / "output.pkl").open("wb") as fh:
        pickle.dump({"result": result}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return 0


if __name__ == "__main__":
    limit_memory(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    sys.exit(main(Path(sys.argv[1])))
