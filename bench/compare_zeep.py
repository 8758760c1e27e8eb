#!/usr/bin/env python3
"""ecgridos against zeep, side by side in one run, on the same fake server.

Measures, for GenerateAPIKey: codec cost per call (build the request + read a
reply, no I/O) and sequential calls per second against `ecgridos serve-mock`
on loopback; then the CLI's wall time and peak RSS for one rotation.
Installs zeep into bench/.venv itself. Run from the repository root:

    python3 bench/compare_zeep.py [--seconds 5]
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv"


def ensure_venv():
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "zeep==4.3.3"], check=True)
    return python


def zeep_side(url, key, user, seconds):
    """Runs inside the venv: prints zeep's figures as JSON."""
    import zeep
    from zeep.loader import parse_xml

    client = zeep.Client(str(ROOT / "wsdl" / "ECGridOS.wsdl"))
    svc = client.create_service("{https://os.ecgrid.io/}ECGridOS_x0020_API_x0020_v4Soap", url)
    operation = svc._binding._operations["GenerateAPIKey"]
    reply = (
        b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        b'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b'<GenerateAPIKeyResponse xmlns="https://os.ecgrid.io/"><GenerateAPIKeyResult>a1b2c3d4-e5f6-7890-abcd-ef1234567890'
        b"</GenerateAPIKeyResult></GenerateAPIKeyResponse></soap:Body></soap:Envelope>"
    )
    from lxml import etree

    def codec(n):
        started = time.perf_counter()
        for _ in range(n):
            message = client.create_message(svc, "GenerateAPIKey", SessionID=key, UserID=user)
            etree.tostring(message)
            operation.process_reply(parse_xml(reply, client.transport, settings=client.settings))
        return (time.perf_counter() - started) / n * 1e9

    codec(500)
    codec_ns = codec(5000)

    def calls(callers):
        import threading
        stop = time.perf_counter() + seconds
        counts = [0] * callers

        def worker(i):
            while time.perf_counter() < stop:
                svc.GenerateAPIKey(SessionID=key, UserID=user)
                counts[i] += 1

        for _ in range(20):
            svc.GenerateAPIKey(SessionID=key, UserID=user)
        started = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(counts) / (time.perf_counter() - started)

    print(json.dumps({"codec_ns": codec_ns, "calls_per_sec_1": calls(1), "calls_per_sec_32": calls(32)}))


def cli_rotation(binary, url, key, user, runs=9):
    """Median wall time (timed here: /usr/bin/time reports only 10 ms steps)
    and peak RSS (from /usr/bin/time -v) of one `ecgridos generate-api-key`."""
    walls, rss = [], []
    for i in range(runs):
        env = dict(os.environ, ECGRID_ENDPOINT=url, ECGRID_API_KEY=key)
        measure_rss = i % 2 == 1
        command = [binary, "generate-api-key", "--user-id", str(user), "--yes"]
        if measure_rss:
            command = ["/usr/bin/time", "-v"] + command
        started = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if result.returncode != 0:
            raise SystemExit(f"CLI rotation failed: {result.stderr}")
        if measure_rss:
            for line in result.stderr.splitlines():
                line = line.strip()
                if line.startswith("Maximum resident set size"):
                    rss.append(int(line.rsplit(" ", 1)[1]) / 1024)
        else:
            walls.append(elapsed_ms)
    return statistics.median(walls), max(rss)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--zeep-side", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.zeep_side:
        url, key, user, seconds = args.zeep_side
        zeep_side(url, key, int(user), float(seconds))
        return

    python = ensure_venv()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "ecgridos", "--example", "bench_probe"], cwd=ROOT, check=True)
    binary = str(ROOT / "target" / "release" / "ecgridos")
    probe_bin = str(ROOT / "target" / "release" / "examples" / "bench_probe")
    server = subprocess.Popen([binary, "serve-mock"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        ready = json.loads(server.stdout.readline())
        url = ready["soap_url"]
        users = {u["login"]: u for u in ready["users"]}
        # Both sides rotate a user's key with the administrator's key, which
        # the rotations do not change, so callers can run at once.
        alice, bob, admin = users["alice"], users["bob"], users["admin"]

        def probe(callers):
            out = subprocess.run([probe_bin, url, admin["api_key"], str(alice["user_id"]), str(args.seconds), str(callers)],
                                 check=True, capture_output=True, text=True).stdout
            return json.loads(out)

        ours1, ours32 = probe(1), probe(32)
        theirs = json.loads(subprocess.run(
            [str(python), __file__, "--zeep-side", url, admin["api_key"], str(bob["user_id"]), str(args.seconds)],
            check=True, capture_output=True, text=True).stdout)
        wall_ms, rss_mb = cli_rotation(binary, url, admin["api_key"], alice["user_id"])
    finally:
        server.terminate()
        server.wait(timeout=10)

    rows = [
        ("codec (build + read), ns/call", ours1["codec_ns"], theirs["codec_ns"], theirs["codec_ns"] / ours1["codec_ns"]),
        ("calls/s, 1 caller", ours1["calls_per_sec"], theirs["calls_per_sec_1"], ours1["calls_per_sec"] / theirs["calls_per_sec_1"]),
        ("calls/s, 32 callers", ours32["calls_per_sec"], theirs["calls_per_sec_32"], ours32["calls_per_sec"] / theirs["calls_per_sec_32"]),
    ]
    print(f"{'GenerateAPIKey, same fake, one run':<36}{'ecgridos':>12}{'zeep':>12}{'ecgridos advantage':>20}")
    for name, ours, zeep, ratio in rows:
        print(f"{name:<36}{ours:>12.0f}{zeep:>12.0f}{ratio:>19.1f}x")
    print(f"CLI, one rotation on loopback: median wall {wall_ms:.1f} ms, peak RSS {rss_mb:.1f} MB")


if __name__ == "__main__":
    main()
