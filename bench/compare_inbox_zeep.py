#!/usr/bin/env python3
"""Reading a large typed answer, ecgridos against zeep on the same bytes, in one run.

`cargo bench --bench inbox` reads a ParcelInBoxEx response of 1,000 ParcelIDInfo
records (2 interchanges each), prints its time and allocations per record and
writes the bytes to target/bench-inbox-1000.xml; zeep (loaded with our WSDL)
then reads those bytes with the operation's own reply processing. Each side's
best run and mean are compared. Run from the repository root:

    python3 bench/compare_inbox_zeep.py
"""
import pathlib
import re
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from compare_zeep import ROOT, ensure_venv  # noqa: E402

XML = ROOT / "target" / "bench-inbox-1000.xml"


def zeep_side():
    """Runs inside the venv: prints zeep's nanoseconds per response."""
    import zeep
    from zeep.loader import parse_xml

    client = zeep.Client(str(ROOT / "wsdl" / "ECGridOS.wsdl"))
    operation = client.bind("ECGridOS_x0020_API_x0020_v4", "ECGridOS_x0020_API_x0020_v4Soap")._binding._operations["ParcelInBoxEx"]
    data = XML.read_bytes()
    result = operation.process_reply(parse_xml(data, client.transport, settings=client.settings))
    assert len(result.ParcelIDInfoList.ParcelIDInfo) == 1000
    runs = 5
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        operation.process_reply(parse_xml(data, client.transport, settings=client.settings))
        times.append(time.perf_counter() - started)
    # Best run (least disturbed by other work on a shared machine), then the mean.
    print(int(min(times) * 1e9), int(sum(times) / runs * 1e9))


def main():
    out = subprocess.run(["cargo", "bench", "--quiet", "--bench", "inbox"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    figures = "\n".join(line for line in out.splitlines() if line.startswith("inbox figures"))
    ours = int(re.search(r"ecgridos_ns_per_response=(\d+)", out).group(1))
    ours_mean = int(re.search(r"ecgridos_mean_ns_per_response=(\d+)", out).group(1))
    python = ensure_venv()
    theirs, theirs_mean = (int(n) for n in subprocess.run(
        [str(python), __file__, "--zeep-side"], check=True, capture_output=True, text=True).stdout.split())
    print(figures)
    print(f"ParcelInBoxEx, 1,000 records, same bytes, best run: ecgridos {ours / 1e6:.2f} ms, zeep {theirs / 1e6:.2f} ms, "
          f"ecgridos {theirs / ours:.1f}x faster")
    print(f"  mean of runs: ecgridos {ours_mean / 1e6:.2f} ms, zeep {theirs_mean / 1e6:.2f} ms, "
          f"ecgridos {theirs_mean / ours_mean:.1f}x faster")


if __name__ == "__main__":
    if sys.argv[1:] == ["--zeep-side"]:
        zeep_side()
    else:
        main()
