#!/usr/bin/env python3
"""The zeep side of `cargo bench --bench parcels` (benches/parcels.rs).

The bench runs this script with the venv's python for each zeep figure; each
call prints one JSON object: {"seconds": ..., "max_rss_kb": ...} (plus "count"
for the inbox listing). zeep reads large base64 text nodes only with
`xml_huge_tree`, and holds the whole document and the decoded content in
memory. Set the venv up once (installs zeep from PyPI into bench/.venv):

    python3 bench/compare_parcels_zeep.py --setup

Subcommands (run by the bench, from the repository root):

    download URL KEY PARCEL_ID OUT       ParcelDownload, content written to OUT
    upload URL KEY FILE FROM_ID TO_ID    ParcelUploadMft of FILE
    inbox URL KEY RUNS                   ParcelInBox, best of RUNS
"""
import json
import pathlib
import resource
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SERVICE = "{https://os.ecgrid.io/}ECGridOS_x0020_API_x0020_v4Soap"


def client(url):
    import zeep

    settings = zeep.Settings(xml_huge_tree=True)
    c = zeep.Client(str(ROOT / "wsdl" / "ECGridOS.wsdl"), settings=settings)
    return c.create_service(SERVICE, url)


def peak_rss_kb():
    """This process's own peak RSS (VmHWM): ru_maxrss would also count the
    pages of the bench process that started it, shared until exec."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def download(url, key, parcel_id, out):
    svc = client(url)
    started = time.perf_counter()
    info = svc.ParcelDownload(SessionID=key, ParcelID=int(parcel_id))
    pathlib.Path(out).write_bytes(info.Content)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "max_rss_kb": peak_rss_kb(), "bytes": len(info.Content)}


def upload(url, key, path, from_id, to_id):
    svc = client(url)
    started = time.perf_counter()
    content = pathlib.Path(path).read_bytes()
    parcel_id = svc.ParcelUploadMft(
        SessionID=key,
        FileName=pathlib.Path(path).name,
        Bytes=len(content),
        Content=content,
        ECGridIDFrom=int(from_id),
        ECGridIDTo=int(to_id),
    )
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "max_rss_kb": peak_rss_kb(), "parcel_id": parcel_id}


def inbox(url, key, runs):
    svc = client(url)
    best, count = None, 0
    for _ in range(int(runs)):
        started = time.perf_counter()
        listing = svc.ParcelInBox(SessionID=key)
        seconds = time.perf_counter() - started
        count = len(listing.ParcelIDInfoList.ParcelIDInfo)
        best = seconds if best is None else min(best, seconds)
    return {"seconds": best, "max_rss_kb": peak_rss_kb(), "count": count}


def main(argv):
    if argv == ["--setup"]:
        sys.path.insert(0, str(ROOT / "bench"))
        from compare_zeep import ensure_venv

        print(ensure_venv())
        return
    command, args = argv[0], argv[1:]
    result = {"download": download, "upload": upload, "inbox": inbox}[command](*args)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
