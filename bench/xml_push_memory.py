"""Peak memory of reading a large XML StockUpload, streamed versus a whole lxml tree.

The security review measured ~12x the body size for large XML pushes. Each variant runs in
its own fresh Python process (so ``ru_maxrss`` is that variant's peak alone) and reads the
same body:

- baseline: ``etree.fromstring`` of the whole body, then the tree converted to the
  JSON-shaped document (how returnbridge read XML before);
- streamed: ``returnbridge.erp.khaos.xml.parse_document`` (lxml ``iterparse``, elements freed
  as soon as they are converted);
- full path: ``parse_stock_upload`` (streamed parse plus the per-item records).

It prints one line per figure: body size, peak RSS growth over an idle interpreter, and that
growth as a multiple of the body size.

    uv run --frozen python bench/xml_push_memory.py [--items N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import resource, sys
from pathlib import Path
variant, path = sys.argv[1], sys.argv[2]
body = Path(path).read_bytes()
def peak_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if variant == "idle":
    pass
elif variant == "baseline":
    from lxml import etree
    from returnbridge.erp.khaos import xml
    def read(el):
        children = [c for c in el if isinstance(c.tag, str)]
        if not children:
            return xml._value(xml._local(el.tag), el.text, el.attrib, [])
        return xml._value(xml._local(el.tag), el.text, el.attrib,
                          [(xml._local(c.tag), read(c)) for c in children])
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    root = etree.fromstring(body, parser)
    doc = read(root)
elif variant == "streamed":
    from returnbridge.erp.khaos.xml import parse_document
    doc = parse_document(body)
elif variant == "full":
    from returnbridge.erp.khaos.pushes import parse_stock_upload
    upload = parse_stock_upload(body, "application/xml")
    assert not upload.problems, upload.problems[:3]
print(peak_kb())
"""


def stock_xml(items: int) -> bytes:
    parts = ["<?xml version='1.0' encoding='utf-8'?>\n<StockItems><Items>"]
    for i in range(items):
        parts.append(
            f"<StockItem><StockID>{100_000 + i}</StockID><StockCode>SKU-{i:06d}</StockCode>"
            f"<ShortDescription>Benchmark item {i} / Black / {i % 13 + 3}UK</ShortDescription>"
            f"<OtherRef>SHOP-{i:06d}</OtherRef><WebCode>web-{i}</WebCode>"
            f"<Barcodes><Barcode>50000{i:08d}</Barcode></Barcodes>"
            "<StockControlled>true</StockControlled><PublishToWeb>true</PublishToWeb>"
            "</StockItem>")
    parts.append("</Items><Deleted/></StockItems>")
    return "".join(parts).encode()


def peak_kb(variant: str, path: Path) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, variant, str(path)], check=True,
                         capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=60_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stock.xml"
        body = stock_xml(args.items)
        path.write_bytes(body)
        size_mb = len(body) / 1e6
        idle = peak_kb("idle", path)
        print(f"xml_push_memory body: {args.items} items, {size_mb:.1f} MB")
        results = {}
        for variant in ("baseline", "streamed", "full"):
            grown_mb = (peak_kb(variant, path) - idle) / 1024
            results[variant] = grown_mb
            print(f"xml_push_memory {variant}: peak RSS +{grown_mb:.0f} MB "
                  f"= {grown_mb / size_mb:.1f}x the body")
        print(f"xml_push_memory streamed vs baseline: "
              f"{results['streamed'] / results['baseline']:.2f}x the memory")


if __name__ == "__main__":
    main()
