"""Web application under load: 50 simulated users browse while 2 margin jobs run.

One run, one machine, loopback only, bounded in count and time:

1. A margin job (demo phantom case, pre/post registration + margin) runs ALONE: its
   wall time is the job baseline.
2. 50 simulated users (each its own login session) browse the worklist, the case page,
   the registry dashboard, the therapy form and the job API with no job running: the
   page-latency baseline (p50/p95).
3. The same 50 users browse again while TWO margin jobs run: page latency (p50/p95)
   and the jobs' wall time, each reported as a ratio to its baseline.

Run: ``.venv/bin/python -m bench web``.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USERS = 50
ROUNDS_ALONE = 4  # pages per user per round: 5
MAX_BROWSE_S = 900.0
PAGES = ("/", "/cases/demo-ablation-001", "/registry", "/therapy", "/api/jobs/1")
MASKS = {
    "tumor_mask": "pre_tumor.nii.gz",
    "ablation_mask": "post_ablation.nii.gz",
    "liver_pre": "pre_liver.nii.gz",
    "liver_post": "post_liver.nii.gz",
}


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _login(client, username: str, password: str) -> str:
    r = await client.post("/login", data={"username": username, "password": password})
    assert r.status_code == 303, r.text
    page = (await client.get("/therapy", headers={"accept": "text/html"})).text
    return re.search(r'name="csrf-token" content="([0-9a-f]+)"', page).group(1)


async def _browse(url: str, username: str, password: str, stop, latencies: list[float]) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=60) as client:
        await _login(client, username, password)
        rounds = 0
        while not stop(rounds):
            for path in PAGES:
                start = time.perf_counter()
                r = await client.get(path, headers={"accept": "text/html"})
                latencies.append(time.perf_counter() - start)
                assert r.status_code in (200, 404), (path, r.status_code)
            rounds += 1


async def _start_margin_job(url: str, username: str, password: str) -> int:
    import httpx

    async with httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=60) as client:
        token = await _login(client, username, password)
        form = {"csrf_token": token, "pre": "pre_ct.nii.gz", "post": "post_ct.nii.gz", **MASKS}
        r = await client.post("/cases/demo-ablation-001/margin", data=form)
        assert r.status_code == 303, r.text
        return int(r.headers["location"].rsplit("/", 1)[1])


def main() -> dict:
    from hepanav.web.harness import PASSWORD, Server, free_port, make_users

    root = Path(tempfile.mkdtemp(prefix="hepanav-bench-web-"))
    data = root / "data"
    case = data / "cases" / "demo-ablation-001"
    case.parent.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "hepanav", "phantom", "--out", str(case)],
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", data, f"sqlite:///{data / 'web.sqlite'}", port)
    # Four accounts (one per role prefix "load"): radiologists start jobs, all browse.
    make_users(server.db, prefix="load")
    server.start()
    accounts = ("load-radiologist", "load-surgeon", "load-admin", "load-radiologist")
    try:

        async def run() -> dict:
            url = server.url
            # 1. one job alone
            start = time.perf_counter()
            job = await _start_margin_job(url, "load-radiologist", PASSWORD)
            alone = (await _wait_jobs_named(url, [job], start))[job]
            # 2. browsing alone
            baseline = await _browse_named(url, lambda rounds: rounds >= ROUNDS_ALONE)
            # 3. browsing while two jobs run
            start = time.perf_counter()
            ids = [await _start_margin_job(url, "load-radiologist", PASSWORD) for _ in range(2)]
            waiter = asyncio.create_task(_wait_jobs_named(url, ids, start))
            t0 = time.perf_counter()
            loaded = await _browse_named(
                url, lambda rounds: waiter.done() or time.perf_counter() - t0 > MAX_BROWSE_S
            )
            times = await waiter
            return {"alone": alone, "baseline": baseline, "loaded": loaded, "jobs": times}

        async def _wait_jobs_named(url, ids, started):
            done: dict[int, float] = {}
            import httpx

            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                await _login(client, "load-admin", PASSWORD)
                while len(done) < len(ids):
                    for job_id in ids:
                        if job_id not in done:
                            state = (await client.get(f"/api/jobs/{job_id}")).json()["state"]
                            if state in ("done", "failed"):
                                assert state == "done", f"job {job_id} failed"
                                done[job_id] = time.perf_counter() - started
                    await asyncio.sleep(0.5)
            return done

        async def _browse_named(url, stop):
            latencies: list[float] = []
            await asyncio.gather(
                *(_browse(url, accounts[i % 4], PASSWORD, stop, latencies) for i in range(USERS))
            )
            return latencies

        figures = asyncio.run(run())
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    base, load = figures["baseline"], figures["loaded"]
    job_times = sorted(figures["jobs"].values())
    result = {
        "users": USERS,
        "requests_baseline": len(base),
        "requests_loaded": len(load),
        "page_p50_s_baseline": statistics.median(base),
        "page_p95_s_baseline": _p(base, 0.95),
        "page_p50_s_loaded": statistics.median(load),
        "page_p95_s_loaded": _p(load, 0.95),
        "page_p95_ratio": _p(load, 0.95) / _p(base, 0.95),
        "job_s_alone": figures["alone"],
        "job_s_two_concurrent": job_times,
        "job_time_ratio": max(job_times) / figures["alone"],
    }
    for key, value in result.items():
        print(f"{key:>24}: {value if not isinstance(value, float) else round(value, 3)}")
    return result


if __name__ == "__main__":
    main()
