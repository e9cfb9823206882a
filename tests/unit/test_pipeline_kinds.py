"""compose: after a Branching stage, each route kind runs a chain composed for it at start,
without the ForKinds stages that do not act on it; the order of the stages kept is the list's."""

from dataclasses import dataclass, field

from function_app.core.pipeline import ForKinds, compose
from function_app.http.headers import Headers
from function_app.http.messages import GatewayRequest, GatewayResponse


def request(kind: str) -> GatewayRequest:
    return GatewayRequest("POST", f"/{kind}", "", Headers(), b"", "198.51.100.4")


def stage(name: str, ran: list):
    async def run(req, call_next):
        ran.append(name)
        return await call_next(req)

    return run


@dataclass
class Brancher:
    """A Branching stage that reads the kind from the path, as the routing stage reads a route."""

    ran: list
    kinds: frozenset = frozenset({"a", "b"})
    branched: list = field(default_factory=list)

    async def __call__(self, req, call_next):
        self.ran.append("route")
        return await call_next(req)

    def branch(self, chains, other):
        async def routed(req):
            self.ran.append("route")
            kind = req.path.strip("/")
            self.branched.append(kind in chains)
            return await chains.get(kind, other)(req)

        return routed


async def terminal(req):
    return GatewayResponse(200, Headers())


def pipeline(ran: list, branching: bool = True):
    stages = [stage("first", ran), *([Brancher(ran)] if branching else []), stage("every", ran),
              ForKinds(frozenset({"a"}), stage("only-a", ran)), stage("middle", ran),
              ForKinds(frozenset({"a", "b"}), stage("a-or-b", ran))]
    return compose(stages, terminal)


async def test_each_kind_runs_its_own_stages_in_the_lists_order():
    ran: list = []
    handle = pipeline(ran)
    await handle(request("a"))
    assert ran == ["first", "route", "every", "only-a", "middle", "a-or-b"]
    ran.clear()
    await handle(request("b"))
    assert ran == ["first", "route", "every", "middle", "a-or-b"]


async def test_a_kind_without_a_chain_runs_every_stage():
    ran: list = []
    await pipeline(ran)(request("unnamed"))
    assert ran == ["first", "route", "every", "only-a", "middle", "a-or-b"]


async def test_without_a_branching_stage_for_kinds_stages_stay_in_place():
    ran: list = []
    await pipeline(ran, branching=False)(request("b"))
    assert ran == ["first", "every", "only-a", "middle", "a-or-b"]
