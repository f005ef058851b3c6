"""Opens every long-lived resource once, through one exit stack, and yields the typed app state."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from fastapi import FastAPI

from gateway.agent.flow import Runner
from gateway.agent.graph import DECIDE, build_runner, build_tool_runner
from gateway.agent.guard import GuardService
from gateway.agent.shadow import ShadowDispatcher
from gateway.audio import service as audio_service
from gateway.audio.service import AudioModels
from gateway.cache import CacheBackends, open_backends
from gateway.cache.service import PipelineCache
from gateway.config.settings import Settings
from gateway.config_sync import ConfigSync
from gateway.evals.assertions import load_custom
from gateway.experiments.canary_sync import CanarySync
from gateway.experiments.judge import ShadowJudge
from gateway.experiments.shadow import ShadowResults, ShadowResultWriter
from gateway.intent import IntentClassifier
from gateway.jobs.open import open_jobs
from gateway.jobs.service import JobService
from gateway.observability import access, metrics, tracing
from gateway.providers.http import UpstreamClients
from gateway.retrieval.factory import open_retrieval
from gateway.retrieval.search_tool import build_search_tool
from gateway.retrieval.service import RetrievalService
from gateway.routing.shared_circuit import open_circuits
from gateway.routing.smart import ConversationTiers, SmartRouting
from gateway.runtime import ConfigHolder
from gateway.services.accounts import Accounts, open_accounts
from gateway.services.completion import CompletionService, CompletionServices
from gateway.services.drain import DRAIN, install_sigterm
from gateway.services.embeddings import EmbeddingService
from gateway.services.eval_runner import EvalRunner
from gateway.tools.audit import ToolAuditWriter
from gateway.tools.builtin import build_registry
from gateway.tools.mcp_client import McpClients
from gateway.tools.mcp_serve import McpEndpoint
from gateway.tools.registry import ToolRegistry

log = structlog.get_logger("prism.lifespan")


@dataclass(slots=True)
class AppState:
    settings: Settings
    holder: ConfigHolder
    graph: Runner
    """The request flow's runner (``GATEWAY_PIPELINE_ENGINE``: the fast runner or LangGraph's)."""
    completions: CompletionService
    clients: UpstreamClients
    draining: bool = False
    accounts: Accounts | None = None
    backends: CacheBackends | None = None
    config_sync: ConfigSync | None = None
    canary_sync: CanarySync | None = None
    """Shares canary promote/rollback/reset and automatic decisions with every worker."""
    shadow_results: ShadowResults | None = None
    """Where shadow pairs are judged, budgeted and written (the admin reports read it)."""
    embeddings: EmbeddingService | None = None
    """``/v1/embeddings`` and in-process embeddings (docs/embeddings.md)."""
    tools: ToolRegistry | None = None
    """Server-side tools: the built-ins and the MCP servers' tools (docs/tools.md, docs/mcp.md)."""
    mcp_clients: McpClients | None = None
    """One supervised session per ``tools.mcp_servers`` entry (health on ``/readyz``)."""
    mcp_endpoint: McpEndpoint | None = None
    """Prism's own MCP server on ``/mcp`` (None when ``tools.mcp_endpoint.enabled`` is false)."""
    retrieval: RetrievalService | None = None
    """Collections, ingest and search over the operator's documents (docs/retrieval.md)."""
    jobs: JobService | None = None
    """``/v1/jobs`` (docs/jobs.md)."""
    audio: AudioModels | None = None
    """``/v1/audio/transcriptions`` and the ``transcription`` job's models (docs/audio.md)."""
    evals: EvalRunner | None = None
    """The evaluation worker (issue #24, docs/prompts-and-evals.md)."""


def _resident_mb() -> float | None:
    """This process's resident set size in MB (Linux ``/proc``; None elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 1e6, 1)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, AppState]]:
    settings: Settings = app.state.settings
    async with contextlib.AsyncExitStack() as stack:
        access.configure(log_prompts=settings.log_prompts)
        stack.callback(metrics.mark_process_dead)  # multiprocess mode: drop this worker's live gauges
        if tracing.configure_tracing(settings) is not None:
            stack.callback(tracing.shutdown_tracing)  # flushes the batch exporter
        clients = UpstreamClients()
        stack.push_async_callback(clients.aclose)
        holder = ConfigHolder(
            path=settings.config,
            clients=clients,
            circuits=open_circuits(
                settings.redis_url, timeout_ms=settings.redis_timeout_ms, prefix=settings.redis_key_prefix
            ),
            env=os.environ,
        )
        stack.push_async_callback(holder.circuits.aclose)
        holder.load()
        stack.push_async_callback(holder.aclose)
        config_sync = ConfigSync.for_settings(holder, settings)  # SIGHUP and cluster-wide reloads
        await config_sync.start()
        stack.push_async_callback(config_sync.aclose)
        canary_sync = CanarySync.for_settings(holder.experiments, settings, config_sync)
        await canary_sync.start()  # canary decisions reach every worker (docs/experiments.md)
        stack.push_async_callback(canary_sync.aclose)
        classifier = await asyncio.to_thread(IntentClassifier.load)
        runner = build_runner(settings.pipeline_engine)
        shadow = ShadowDispatcher()
        stack.push_async_callback(shadow.aclose)
        accounts = await open_accounts(settings, stack)
        shadow.results.writer = ShadowResultWriter(accounts.engine)  # shadow_results (issue #5)
        await shadow.results.writer.start()
        stack.push_async_callback(shadow.results.writer.aclose)
        judge = ShadowJudge(lambda: holder.current, writer=shadow.results.writer)
        shadow.results.judge = judge
        stack.push_async_callback(judge.aclose)
        stack.push_async_callback(shadow.aclose)  # runs first: finish shadow calls, judge, then write
        tools = build_registry(holder.current.config.tools)
        await tools.probe()  # the sandboxed Python tool is left out where it cannot run safely
        tool_audit = ToolAuditWriter(accounts.engine)  # the tool_calls audit table (docs/tools.md)
        await tool_audit.start()
        stack.push_async_callback(tool_audit.aclose)
        backends = await open_backends(
            settings, quota_config=holder.current.config.quotas, prefix=settings.redis_key_prefix
        )
        stack.push_async_callback(backends.aclose)
        services = CompletionServices(
            holder=holder,
            graph=runner,
            decide=build_runner(settings.pipeline_engine, DECIDE),
            guard=GuardService(),
            shadow=shadow,
            usage=accounts.recorder,
            classifier=SmartRouting(
                classifier, tiers=ConversationTiers.for_backends(backends, prefix=settings.redis_key_prefix)
            ),
            response_cache=PipelineCache(backends.cache, lambda: holder.current.config),
            quotas=backends.quotas,
            tools=tools,
            tool_graph=build_tool_runner(),
            tool_audit=tool_audit,
        )
        tools_config = holder.current.config.tools
        mcp_clients = McpClients(tools_config.mcp_servers, tools, env=os.environ)
        mcp_clients.start()  # connects in the background: start-up does not wait for MCP servers
        stack.push_async_callback(mcp_clients.aclose)
        mcp_endpoint = None
        if tools_config.mcp_endpoint.enabled:
            mcp_endpoint = McpEndpoint(
                registry=tools, config=lambda: holder.current.config, quotas=backends.quotas
            )
            await mcp_endpoint.start()
            stack.push_async_callback(mcp_endpoint.aclose)
        state = AppState(
            settings=settings,
            holder=holder,
            graph=runner,
            completions=CompletionService(services),
            clients=clients,
            accounts=accounts,
            backends=backends,
            config_sync=config_sync,
            canary_sync=canary_sync,
            shadow_results=shadow.results,
            embeddings=EmbeddingService(
                holder=holder,
                clients=clients,
                env=os.environ,
                usage=accounts.recorder,
                quotas=backends.quotas,
                cache=backends.cache,
            ),
            tools=tools,
            mcp_clients=mcp_clients,
            mcp_endpoint=mcp_endpoint,
        )
        if state.embeddings is not None:
            state.retrieval = await open_retrieval(settings.database_url, accounts.engine, state.embeddings)
            if state.retrieval is not None:
                stack.push_async_callback(state.retrieval.store.aclose)
                search = build_search_tool(state.retrieval)
                if search is not None:  # offered where a route or request names it (gateway/tools/access.py)
                    tools.replace_group(search.name, [search])
        state.audio = AudioModels(lambda: holder.current.config.audio, os.environ)
        audio_service.ACTIVE = state.audio
        stack.push_async_callback(state.audio.aclose)
        state.jobs = await open_jobs(
            settings,
            stack,
            engine=accounts.engine,
            targets=lambda: holder.current.targets,
            completions=state.completions,
        )
        state.evals = EvalRunner(
            sessionmaker=accounts.sessionmaker,
            completions=state.completions,
            holder=holder,
            embeddings=state.embeddings,
            custom=load_custom(settings.eval_assertions_module),
            max_concurrency=settings.eval_max_concurrency,
            lease_s=settings.eval_lease_s,
        )
        state.evals.start()
        stack.push_async_callback(state.evals.aclose)  # before the usage recorder closes
        DRAIN.reset()
        DRAIN.on_begin(lambda: setattr(state, "draining", True))
        install_sigterm(delay_s=settings.drain_delay_s, timeout_s=settings.drain_timeout_s)
        # What start-up built (modules, config, classifier) lives as long as the process: keep it out of
        # the collector's full passes, which otherwise stop the event loop for ~200 ms every few seconds
        # under load (more often with shadow traffic, whose queued calls survive into the old generation).
        gc.collect()
        gc.freeze()
        log.info(
            "gateway_started",
            config=str(settings.config),
            models=sorted(holder.current.targets),
            rss_mb=_resident_mb(),  # issue #9: a worker stays under 300 MB
        )
        yield {"app": state}
        state.draining = True
        log.info("gateway_stopping")
