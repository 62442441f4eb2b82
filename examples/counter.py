"""A Durable Object counter written as a Python Worker writes it, driven through the embedding API (no server).

Run: python examples/counter.py
"""

from __future__ import annotations

import trio

from runtime import open_runtime, pyworkers

pyworkers.install()  # workers, js and pyodide, as a deployed Python Worker has them

from workers import DurableObject, Response  # noqa: E402


class Counter(DurableObject):
    async def increment(self, by):  # an RPC method: positional arguments only
        n = (await self.ctx.storage.get("n") or 0) + by
        await self.ctx.storage.put("n", n)
        return n

    async def fetch(self, request):  # the HTTP-style entry point
        return Response(str(await self.increment(1)))


async def main() -> None:
    async with open_runtime(objects={"COUNTER": Counter}, state_dir=".shardsim/counter-example") as rt:
        stub = rt.env.COUNTER.getByName("room-1")
        print("rpc   ->", await stub.increment(2))
        resp = await stub.fetch("http://do/anything")
        print("fetch ->", await resp.text())
        await rt.hibernate(stub)  # drop the instance; storage survives
        print("after hibernation ->", await stub.increment(0))


if __name__ == "__main__":
    trio.run(main)
