"""SageMaker as the controller meets it: missing operations, AWS's conflicts, time.

moto's SageMaker lacks the Studio operations beyond CreateDomain, the model
registry's policies and deletes, UpdateEndpoint and StopPipelineExecution, and
makes every resource terminal at once. The modules here add those operations
and transitional states to moto's SageMaker response class:

- core: handler registration, the extension's own state, lazily applied state changes
- studio: domains, user profiles, apps, spaces
- registry: model package groups, their policies, model package updates, listing order and deletes
- endpoints: models (model package access), endpoint configs, endpoints (create, blue/green update,
  delete), their listings
- pipelines: pipelines (tokens, not-found errors, deletes) and their executions
- tags: AddTags / ListTags / DeleteTags
"""

from . import core, endpoints, pipelines, registry, studio, tags  # noqa: F401  (registers handlers)


def install() -> None:
    """Attach all SageMaker handlers and patches to moto."""
    core.install()
    endpoints.install()
    registry.install()
