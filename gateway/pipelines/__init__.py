"""Document pipelines run by the durable runtime (issue #23): ``document_analysis`` (공문 analysis)
and ``summarize`` (map-reduce summary). Their model calls go through Prism's own request path
(:mod:`gateway.pipelines.llm`), so routing, guards, quotas and usage records apply. See
docs/pipelines.md."""
