"""Write the software bill of materials of a built engine image (CycloneDX 1.6), from the image itself.

    python deploy/sbom/image.py IMAGE.tar WHEELS_DIR OUT.cdx.json   # deploy/build-image.sh runs it

It reads the saved image (a docker-archive, as build-image.sh saves it) layer by layer, without running it: every
Python distribution installed in the engine's virtualenv (its ``METADATA``: name, version, licence) and every
Debian package of the root file system (``/var/lib/dpkg/status``, with the licences its machine-readable
``/usr/share/doc/<package>/copyright`` names). Python components carry the SHA-256 of the wheel they were
installed from. The image id (its configuration's digest) names the document, whose serial number and time follow
from it and SOURCE_DATE_EPOCH: the same image gives the same SBOM. cyclonedx-python-lib writes and validates it.

It fails when a Python component is under a strong copyleft licence only (GPL, AGPL): the engine's own layer
holds none (yprov4wfs is left out of the image; workflows/openeo_schema.py). Debian's packages keep their
licences as Debian distributes them (bash, coreutils and the like are GPL programs beside the engine).
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import os
import re
import sys
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import licence_of, strong_copyleft  # the wheel's SBOM script, beside this one

VENV = "opt/twinengine/"
DPKG_STATUS = "var/lib/dpkg/status"
DOC = "usr/share/doc/"
DISTRO = "debian-12"


@dataclass
class ImageFiles:
    """What the SBOM needs of the image's file system, its layers applied in order."""

    image_id: str
    metadata: dict[str, bytes] = field(default_factory=dict)  # dist-info METADATA by path
    dpkg_status: bytes = b""
    copyrights: dict[str, bytes] = field(default_factory=dict)  # by package folder under /usr/share/doc
    doc_links: dict[str, str] = field(default_factory=dict)  # /usr/share/doc/<pkg> -> the folder it points at


def _wanted(path: str) -> str | None:
    if path.startswith(VENV) and path.endswith(".dist-info/METADATA") and "/site-packages/" in path:
        return "metadata"
    if path == DPKG_STATUS:
        return "dpkg"
    if path.startswith(DOC) and path.endswith("/copyright") and path.count("/") == 4:
        return "copyright"
    return None


def read_image(archive: Path) -> ImageFiles:
    """The files the SBOM needs, from a docker-archive's layers (whiteouts honoured)."""
    with tarfile.open(archive) as outer:
        manifest = json.loads(outer.extractfile("manifest.json").read())[0]  # type: ignore[union-attr]
        config = outer.extractfile(manifest["Config"]).read()  # type: ignore[union-attr]
        found = ImageFiles(image_id="sha256:" + hashlib.sha256(config).hexdigest())
        for layer in manifest["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
                for member in inner:
                    _apply(found, inner, member)
    return found


def _apply(found: ImageFiles, layer: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    path = member.name.removeprefix("./")
    name = PurePosixPath(path).name
    if name.startswith(".wh."):
        gone = str(PurePosixPath(path).parent / name.removeprefix(".wh."))
        found.metadata = {k: v for k, v in found.metadata.items() if k != gone and not k.startswith(gone + "/")}
        return
    if member.issym() and path.startswith(DOC) and path.count("/") == 3:
        found.doc_links[path.removeprefix(DOC)] = PurePosixPath(member.linkname).name
        return
    kind = _wanted(path)
    if kind is None or not member.isfile():
        return
    data = layer.extractfile(member).read()  # type: ignore[union-attr]
    if kind == "metadata":
        found.metadata[path] = data
    elif kind == "dpkg":
        found.dpkg_status = data
    else:
        found.copyrights[path.removeprefix(DOC).split("/")[0]] = data


def wheel_hashes(wheels: Path) -> dict[tuple[str, str], str]:
    """SHA-256 of each wheel the image was installed from, by (normalised name, version)."""
    hashes = {}
    for wheel in wheels.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        hashes[(normalise(name), version)] = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return hashes


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _licences(factory: LicenseFactory, texts: list[str]) -> list[LicenseExpression | DisjunctiveLicense]:
    out: list[LicenseExpression | DisjunctiveLicense] = []
    for text in dict.fromkeys(t.strip() for t in texts if t.strip()):
        out.append(factory.make_from_string(text))
    if len(out) > 1 and any(isinstance(x, LicenseExpression) for x in out):
        return [x for x in out if isinstance(x, LicenseExpression)][:1]  # CycloneDX: one expression, or licences
    return out


def python_components(files: ImageFiles, hashes: dict[tuple[str, str], str]) -> Iterator[Component]:
    factory = LicenseFactory()
    for meta_bytes in files.metadata.values():
        meta = email.parser.BytesParser().parsebytes(meta_bytes, headersonly=True)
        name, version = str(meta["Name"]), str(meta["Version"])
        declared = [str(meta.get("License-Expression") or "")]
        if not declared[0]:
            text = str(meta.get("License") or "").strip()
            classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
            declared = [text] if text and "\n" not in text and len(text) <= 80 else classifiers
        digest = hashes.get((normalise(name), version))
        yield Component(name=name, version=version, type=ComponentType.LIBRARY,
                        bom_ref=f"pypi:{normalise(name)}@{version}",
                        purl=PackageURL(type="pypi", name=normalise(name), version=version),
                        licenses=_licences(factory, declared),
                        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest)] if digest else None,
                        properties=[Property(name="twinengine:layer", value="engine")])


def _paragraphs(status: bytes) -> Iterator[dict[str, str]]:
    for block in status.decode("utf-8", "replace").split("\n\n"):
        if block.strip():
            fields = email.parser.Parser().parsestr(block, headersonly=True)
            yield {k: str(v) for k, v in fields.items()}


def _debian_licences(copyright_text: bytes | None) -> list[str]:
    """The licence short names of a machine-readable (DEP-5) copyright file; none for a free-form one."""
    if not copyright_text:
        return []
    text = copyright_text.decode("utf-8", "replace")
    if not re.match(r"(?i)format:", text):
        return []
    return sorted({m.strip() for m in re.findall(r"(?m)^License:[ \t]*(\S[^\n]*)$", text)})


def debian_components(files: ImageFiles) -> Iterator[Component]:
    for package in _paragraphs(files.dpkg_status):
        if not package.get("Status", "").endswith(" installed"):
            continue
        name, version, arch = package["Package"], package["Version"], package.get("Architecture", "all")
        folder = files.doc_links.get(name, name)
        names = _debian_licences(files.copyrights.get(folder))
        properties = [Property(name="twinengine:layer", value="debian")]
        if not names:
            properties.append(Property(name="twinengine:licence", value=f"see /usr/share/doc/{folder}/copyright"))
        yield Component(name=name, version=version, type=ComponentType.LIBRARY if name.startswith("lib")
                        else ComponentType.APPLICATION, bom_ref=f"deb:{name}@{version}",
                        purl=PackageURL(type="deb", namespace="debian", name=name, version=version,
                                        qualifiers={"arch": arch, "distro": DISTRO}),
                        licenses=[DisjunctiveLicense(name=n) for n in names] or None, properties=properties)


def bom(files: ImageFiles, hashes: dict[tuple[str, str], str], epoch: int) -> Bom:
    python = sorted(python_components(files, hashes), key=lambda c: c.name.lower())
    engine = next((c for c in python if c.name.lower() == "twinengine"), None)
    version = engine.version if engine is not None else "unknown"
    image = Component(name="twinengine", version=version, type=ComponentType.CONTAINER,
                      bom_ref=f"image:twinengine@{version}", description="the engine's OCI image (twin serve)",
                      properties=[Property(name="oci:image:id", value=files.image_id)])
    document = Bom(serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"twinengine-image:{files.image_id}"),
                   metadata=BomMetaData(component=image, timestamp=datetime.fromtimestamp(epoch, UTC)))
    contents = [*python, *sorted(debian_components(files), key=lambda c: c.name)]
    for component in contents:
        document.components.add(component)
    document.register_dependency(image, contents)  # the image holds each; their own graph is not read here
    return document


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    archive, wheels, out = Path(argv[0]), Path(argv[1]), Path(argv[2])
    files = read_image(archive)
    document = bom(files, wheel_hashes(wheels), int(os.environ.get("SOURCE_DATE_EPOCH", "0")))
    text = JsonV1Dot6(document).output_as_string(indent=2)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        print(f"the SBOM does not validate against CycloneDX 1.6: {error}", file=sys.stderr)
        return 1
    out.write_text(text + "\n")
    written = json.loads(text)["components"]  # as generate.py reads the wheel's: licence_of on the JSON
    python = [c for c in written if c["bom-ref"].startswith("pypi:")]
    debian = [c for c in written if c["bom-ref"].startswith("deb:")]
    copyleft = sorted(c["name"] for c in python if strong_copyleft(licence_of(c)))
    print(f"{out}: {len(python)} Python distributions, {len(debian)} Debian packages ({files.image_id})")
    if copyleft:
        print(f"GPL/AGPL-only Python distributions in the image: {', '.join(copyleft)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
