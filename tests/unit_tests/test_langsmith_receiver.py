"""The LangSmith test receiver, driven by the real langsmith client and real runnables."""

from __future__ import annotations

import datetime
import http.client
import json
import time
import uuid
from typing import Any

import langsmith
import langsmith.run_trees
import langsmith.utils
import pytest
import zstandard
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.tracers.langchain import get_client, wait_for_all_tracers

from tests.langsmith_receiver import (
    LangSmithReceiver,
    Run,
    release_default_client,
    reset_langsmith_caches,
)

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHILD_NAMES = ["add_one", "nested", "to_prompt", "GenericFakeChatModel"]


def _config(*callbacks: BaseCallbackHandler) -> RunnableConfig:
    """Invoke config: tags and metadata every run must carry, plus callbacks."""
    return RunnableConfig(
        tags=["outer-tag"], metadata={"case": "m1"}, callbacks=list(callbacks)
    )


def _add_one(x: int) -> int:
    return x + 1


def _double(x: int) -> int:
    return x * 2


def _to_prompt(x: int) -> str:
    return f"value is {x}"


def _boom(x: int) -> int:
    msg = f"boom {x}"
    raise ValueError(msg)


def _chain() -> Runnable[int, Any]:
    """outer -> add_one, nested -> double, to_prompt, GenericFakeChatModel."""
    double = RunnableLambda(_double).with_config(run_name="double")

    def nested(x: int) -> int:
        return double.invoke(x)  # child run of `nested` through the context config

    model = GenericFakeChatModel(messages=iter([AIMessage(content="hello from fake")]))
    return (
        RunnableLambda(_add_one).with_config(run_name="add_one", tags=["inner-tag"])
        | RunnableLambda(nested).with_config(run_name="nested")
        | RunnableLambda(_to_prompt).with_config(run_name="to_prompt")
        | model
    ).with_config(run_name="outer")


def _assert_chain_tree(rx: LangSmithReceiver, project: str) -> None:
    assert rx.wait_for_runs(6, timeout=10), rx.tree()
    runs = rx.runs
    assert len(runs) == 6, rx.tree()
    roots = rx.roots()
    assert [r["name"] for r in roots] == ["outer"], rx.tree()
    root = roots[0]
    children = rx.children_of(root["id"])
    assert [c["name"] for c in children] == CHILD_NAMES, rx.tree()
    add_one, nested, to_prompt, llm = children
    (double,) = rx.children_of(nested["id"])
    assert double["name"] == "double", rx.tree()
    for leaf in (add_one, double, to_prompt, llm):
        assert rx.children_of(leaf["id"]) == [], rx.tree()

    for run in runs.values():
        assert run["trace_id"] == root["id"], rx.tree()
        assert run["session_name"] == project
        assert "outer-tag" in run["tags"], rx.tree()
        assert run["extra"]["metadata"]["case"] == "m1"
        assert run["start_time"], rx.tree()
        assert run["end_time"], rx.tree()
        assert run["error"] is None, rx.tree()
        if run["parent_run_id"]:
            parent = runs[run["parent_run_id"]]
            assert run["dotted_order"].startswith(parent["dotted_order"] + ".")
    assert rx.find(tag="inner-tag") == [add_one], rx.tree()
    assert rx.find(run_type="llm") == [llm]
    assert [
        r["name"] for r in rx.find(run_type="chain", parent_run_id=root["id"])
    ] == CHILD_NAMES[:3]

    assert root["inputs"] == {"input": 1}
    assert root["outputs"]["output"]["content"] == "hello from fake"
    assert add_one["outputs"] == {"output": 2}
    assert nested["outputs"] == {"output": 4}
    assert double["inputs"] == {"input": 2}
    assert double["outputs"] == {"output": 4}
    assert to_prompt["outputs"] == {"output": "value is 4"}
    assert llm["outputs"]["generations"][0][0]["text"] == "hello from fake"
    assert llm["inputs"]["messages"][0][0]["kwargs"]["content"] == "value is 4"


def _assert_clean(rx: LangSmithReceiver) -> None:
    assert rx.unexpected_requests == [], rx.tree()
    assert rx.errors == [], rx.tree()


@pytest.mark.parametrize("zstd", [True, False], ids=["zstd", "plain"])
def test_explicit_tracer_delivers_the_whole_tree(zstd: bool) -> None:
    with LangSmithReceiver(zstd=zstd) as rx:
        tracer = rx.tracer(project_name="explicit")
        # rx.client() waited for /info, so compression is already decided
        assert (tracer.client.compressed_traces is not None) is zstd
        result = _chain().invoke(1, config=_config(tracer))
        assert result.content == "hello from fake"
        tracer.wait_for_futures()

        _assert_chain_tree(rx, "explicit")
        _assert_clean(rx)
        assert [r.path for r in rx.requests if r.method == "GET"] == ["/info"]
        ingest = [r for r in rx.requests if r.method == "POST"]
        assert ingest
        assert {r.path for r in ingest} == {"/runs/multipart"}
        assert {r.content_encoding for r in ingest} == ({"zstd"} if zstd else {None})
        if zstd:  # compressed on the wire; post and patch of a run came separately
            assert all(
                r.raw.startswith(ZSTD_MAGIC) and r.body.startswith(b"--")
                for r in ingest
            )
            assert all(
                run["_received"] == ["post", "patch"] for run in rx.runs.values()
            )


@pytest.mark.asyncio
async def test_async_invoke_is_traced() -> None:
    with LangSmithReceiver(zstd=True) as rx:
        tracer = rx.tracer(project_name="async")
        result = await _chain().ainvoke(1, config=_config(tracer))
        assert result.content == "hello from fake"
        tracer.wait_for_futures()
        _assert_chain_tree(rx, "async")
        _assert_clean(rx)


def test_batch_endpoint_when_multipart_is_not_advertised() -> None:
    with LangSmithReceiver(use_multipart_endpoint=False) as rx:
        tracer = rx.tracer(project_name="batch")
        _chain().invoke(1, config=_config(tracer))
        rx.flush()
        _assert_chain_tree(rx, "batch")
        _assert_clean(rx)
        assert {(r.method, r.path) for r in rx.requests} == {
            ("GET", "/info"),
            ("POST", "/runs/batch"),
        }


def test_non_batch_client_posts_and_patches_each_run() -> None:
    with LangSmithReceiver() as rx:
        tracer = rx.tracer(
            project_name="single", client=rx.client(auto_batch_tracing=False)
        )
        _chain().invoke(1, config=_config(tracer))
        tracer.wait_for_futures()
        _assert_chain_tree(rx, "single")
        _assert_clean(rx)
        methods = sorted((r.method, r.path.rsplit("/", 1)[0]) for r in rx.requests)
        assert methods == [("PATCH", "/runs")] * 6 + [("POST", "")] * 6
        assert all(run["_received"] == ["post", "patch"] for run in rx.runs.values())


def test_errors_are_recorded_on_the_failing_run_and_its_parent() -> None:
    with LangSmithReceiver() as rx:
        tracer = rx.tracer(project_name="errors")
        chain = (
            RunnableLambda(_add_one).with_config(run_name="add_one")
            | RunnableLambda(_boom).with_config(run_name="boom")
        ).with_config(run_name="failing")
        with pytest.raises(ValueError, match="boom 2"):
            chain.invoke(1, config={"callbacks": [tracer]})
        tracer.wait_for_futures()
        assert rx.wait_for_runs(3), rx.tree()
        (root,) = rx.find(name="failing")
        (add_one, boom) = rx.children_of(root["id"])
        assert (add_one["name"], boom["name"]) == ("add_one", "boom")
        assert add_one["error"] is None
        assert add_one["outputs"] == {"output": 2}
        assert "ValueError: boom 2" in boom["error"]
        assert "ValueError" in root["error"]
        assert "boom" in rx.tree()
        _assert_clean(rx)


def test_env_var_tracing_with_monkeypatch(monkeypatch: pytest.MonkeyPatch) -> None:
    tracing_before = langsmith.utils.tracing_is_enabled()
    with LangSmithReceiver() as rx:
        for name, value in rx.env(project_name="from-env").items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        monkeypatch.setattr(langsmith.run_trees, "_CLIENT", None)
        reset_langsmith_caches()
        try:
            assert langsmith.utils.tracing_is_enabled() is True
            # no callbacks: langchain-core adds a LangChainTracer from the environment
            result = _chain().invoke(1, config=_config())
            assert result.content == "hello from fake"
            assert get_client().api_url == rx.url
            wait_for_all_tracers()
            _assert_chain_tree(rx, "from-env")
            _assert_clean(rx)
        finally:
            release_default_client()
            monkeypatch.undo()
            reset_langsmith_caches()
    assert langsmith.utils.tracing_is_enabled() == tracing_before


def test_traced_env_restores_env_caches_and_default_client() -> None:
    tracing_before = langsmith.utils.tracing_is_enabled()
    client_before = langsmith.run_trees._CLIENT
    with LangSmithReceiver() as rx:
        with rx.traced_env(project_name="ctx"):
            _chain().invoke(1, config=_config())
            wait_for_all_tracers()
            _assert_chain_tree(rx, "ctx")
        assert langsmith.run_trees._CLIENT is client_before
        assert langsmith.utils.tracing_is_enabled() == tracing_before
        if not tracing_before:  # and nothing more is sent once the env is restored
            count = len(rx.requests)
            _chain().invoke(1, config=_config())
            time.sleep(0.3)
            assert len(rx.requests) == count
        _assert_clean(rx)


def test_two_receivers_do_not_see_each_others_runs() -> None:
    with LangSmithReceiver() as rx_a, LangSmithReceiver(zstd=False) as rx_b:
        tracer_a = rx_a.tracer(project_name="a")
        RunnableLambda(_add_one).with_config(run_name="only_a").invoke(
            1, config={"callbacks": [tracer_a]}
        )
        tracer_a.wait_for_futures()
        assert rx_a.wait_for_runs(1)
        assert [r["name"] for r in rx_a.runs.values()] == ["only_a"]
        assert rx_b.runs == {}
        assert not rx_b.wait_for(bool, timeout=0.2)
        assert rx_b.tree() == "(no runs received)"


def _post(
    rx: LangSmithReceiver,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    *,
    chunked: bool = False,
) -> int:
    host, port = rx.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        if chunked:
            conn.request(
                method,
                path,
                body=iter([body[:7], body[7:]]),
                headers=headers,
                encode_chunked=True,
            )
        else:
            conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _multipart(
    parts: list[tuple[str, Any]], boundary: str = "b0und4ry"
) -> tuple[bytes, str]:
    chunks = []
    for name, value in parts:
        data = json.dumps(value).encode()
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def test_hand_made_requests_merge_out_of_order_and_decode_zstd_and_chunked() -> None:
    run_id, child_id = str(uuid.uuid4()), str(uuid.uuid4())
    with LangSmithReceiver(zstd=False) as rx:
        # the patch arrives first, zstd-compressed although not advertised
        body, ctype = _multipart(
            [
                (
                    f"patch.{run_id}",
                    {"id": run_id, "trace_id": run_id, "end_time": "t2", "name": None},
                ),
                (f"patch.{run_id}.outputs", {"answer": 42}),
            ]
        )
        compressed = zstandard.ZstdCompressor().compress(body)
        headers = {"Content-Type": ctype, "Content-Encoding": "zstd"}
        assert _post(rx, "POST", "/runs/multipart", compressed, headers) == 202
        body, ctype = _multipart(
            [
                (
                    f"post.{run_id}",
                    {
                        "id": run_id,
                        "trace_id": run_id,
                        "name": "root",
                        "run_type": "chain",
                    },
                ),
                (f"post.{run_id}.inputs", {"q": "?"}),
                (f"post.{run_id}.extra", {"metadata": {"k": "v"}}),
                (
                    f"post.{child_id}",
                    {
                        "id": child_id,
                        "trace_id": run_id,
                        "parent_run_id": run_id,
                        "name": "kid",
                    },
                ),
                (f"post.{child_id}.error", "RuntimeError('x')"),
            ]
        )
        assert (
            _post(
                rx,
                "POST",
                "/runs/multipart",
                body,
                {"Content-Type": ctype},
                chunked=True,
            )
            == 202
        )
        patch = json.dumps({"end_time": "t3", "tags": ["late"]}).encode()
        assert (
            _post(
                rx,
                "PATCH",
                f"/runs/{child_id}",
                patch,
                {"Content-Type": "application/json"},
            )
            == 202
        )

        root = rx.runs[run_id]
        assert (root["name"], root["run_type"], root["end_time"]) == (
            "root",
            "chain",
            "t2",
        )
        assert (root["inputs"], root["outputs"], root["extra"]) == (
            {"q": "?"},
            {"answer": 42},
            {"metadata": {"k": "v"}},
        )
        assert root["_received"] == ["post", "patch"]
        assert [c["name"] for c in rx.children_of(run_id)] == ["kid"]
        kid = rx.runs[child_id]
        assert (kid["error"], kid["tags"], kid["end_time"]) == (
            "RuntimeError('x')",
            ["late"],
            "t3",
        )
        assert [r.content_encoding for r in rx.requests] == ["zstd", None, None]
        _assert_clean(rx)


def test_unknown_paths_and_bad_bodies_are_recorded() -> None:
    with LangSmithReceiver() as rx:
        assert _post(rx, "GET", "/commits/x?name=x", b"", {}) == 404
        assert (
            _post(
                rx,
                "POST",
                "/runs/multipart",
                b"not multipart",
                {"Content-Type": "text/plain"},
            )
            == 400
        )
        assert (
            _post(rx, "POST", "/runs/multipart", b"x", {"Content-Encoding": "br"})
            == 400
        )
        assert [(r.method, r.path, r.status) for r in rx.unexpected_requests] == [
            ("GET", "/commits/x", 404)
        ]
        errors = rx.errors
        assert len(errors) == 2
        assert "not a multipart body" in errors[0]
        assert "'br'" in errors[1]
        assert rx.runs == {}


def _names(runs: dict[str, Run]) -> set[str]:
    return {r["name"] for r in runs.values()}


def test_wait_for_times_out_and_sees_late_runs() -> None:
    with LangSmithReceiver() as rx:
        started = time.monotonic()
        assert rx.wait_for(lambda runs: "late" in _names(runs), timeout=0.2) is False
        assert time.monotonic() - started >= 0.2
        tracer = rx.tracer()
        RunnableLambda(_add_one).with_config(run_name="late").invoke(
            1, config={"callbacks": [tracer]}
        )
        # no explicit flush: the background threads deliver on their own
        assert rx.wait_for(lambda runs: "late" in _names(runs), timeout=10), rx.tree()


def test_v2_runs_query_pages_selects_filters_and_refuses() -> None:
    """``POST /api/v2/runs/query`` as langsmith's generated sync client speaks it."""
    with LangSmithReceiver() as rx:
        client = rx.client()
        tracer = rx.tracer("p", client=client)
        for x in range(3):
            _chain().invoke(x, config=_config(tracer))
        RunnableLambda(_add_one).invoke(1, {"callbacks": [rx.tracer("other")]})
        rx.flush()
        assert rx.wait_for_runs(3 * 6 + 1), rx.tree()
        project = client.read_project(project_name="p")
        traced = [r for r in rx.runs.values() if r["session_name"] == "p"]
        # created when its first run arrived: after the runs had started
        assert project.start_time > datetime.datetime.fromisoformat(
            min(r["start_time"] for r in traced)
        )
        runs = client._get_langsmith_api_sync().runs
        ids = [str(project.id)]

        pager = runs.query(
            project_ids=ids, selects=["ID", "PARENT_RUN_IDS"], page_size=4
        )
        pages = list(pager.iter_pages())
        assert [len(page.items) for page in pages] == [4, 4, 4, 4, 2]
        got = [run for page in pages for run in page.items]
        assert [run.id for run in got] == [r["id"] for r in traced]  # arrival order
        for run, stored in zip(got, traced, strict=True):
            assert run.model_fields_set == {"id", "parent_run_ids"}  # selects only
            assert run.parent_run_ids == _ancestors(rx, stored)
        bodies = [json.loads(r.body) for r in rx.requests if r.path.startswith("/api")]
        assert len(bodies) == len(pages)
        assert "cursor" not in bodies[0]
        assert all(b == {**bodies[0], "cursor": b["cursor"]} for b in bodies[1:])

        llm = next(r for r in traced if r["run_type"] == "llm")
        (only,) = runs.query(
            project_ids=ids,
            run_type="LLM",
            trace_id=llm["trace_id"],
            selects=["ID", "RUN_TYPE", "STATUS", "TAGS", "IS_ROOT", "PROJECT_ID"],
        )
        assert (only.id, only.run_type, only.status) == (llm["id"], "LLM", "SUCCESS")
        assert (only.tags, only.is_root, only.project_id) == (
            llm["tags"],
            False,
            str(project.id),
        )
        assert [r.id for r in runs.query(project_ids=ids, is_root=True)] == [
            r["id"] for r in traced if r["parent_run_id"] is None
        ]

        # outside the window (by default the last day up to now): left out
        old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
        plain = rx.client(auto_batch_tracing=False)
        plain.create_run("old", {}, "chain", project_name="p", start_time=old)
        assert rx.wait_for(lambda seen: "old" in _names(seen)), rx.tree()
        assert len(list(runs.query(project_ids=ids))) == len(traced)
        since = old - datetime.timedelta(minutes=1)
        assert len(list(runs.query(project_ids=ids, min_start_time=since))) == (
            len(traced) + 1
        )
        _assert_clean(rx)

        with pytest.raises(langsmith.NotFoundError, match="not found"):
            list(runs.query(project_ids=[str(uuid.uuid4())]))
        refused: list[dict[str, Any]] = [
            {"extra_body": {"run_type": "llm"}},  # the API spells it "LLM"
            {"filter": 'eq(name, "add_one")'},  # no filter language here
            {"selects": ["FEEDBACK_STATS"]},  # not answered by the receiver
            {"page_size": 0},
            {"cursor": "not-a-cursor"},
        ]
        for options in refused:
            with pytest.raises(langsmith.BadRequestError):
                list(runs.query(project_ids=ids, **options))
        with pytest.raises(langsmith.BadRequestError, match="project_ids"):
            list(runs.query(selects=["ID"]))
        assert len(rx.errors) == len(refused) + 1, rx.errors
        # the deprecated v1 query (Client.list_runs) is not served
        json_body = {"Content-Type": "application/json"}
        assert _post(rx, "POST", "/runs/query", b"{}", json_body) == 404
        assert [r.path for r in rx.unexpected_requests] == [
            "/api/v2/runs/query",  # the unknown project's
            "/runs/query",
        ]


def _ancestors(rx: LangSmithReceiver, run: Run) -> list[str]:
    """The ids above ``run``, its trace's root first, by the parent links."""
    chain: list[str] = []
    while run["parent_run_id"]:
        run = rx.runs[run["parent_run_id"]]
        chain.insert(0, run["id"])
    return chain
