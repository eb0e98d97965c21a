"""The Ray side of an ``LLM``: the cluster joined when first needed, deployments started, found
and removed by name, and the resources a new deployment gets unless the call says otherwise.

Nothing here imports Ray until a method runs, so ``import byzer_agents`` stays light.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from byzer_agents.exceptions import ConfigurationError
from byzer_agents.llm_runtime.infer_backend import InferBackend

if TYPE_CHECKING:
    from byzer_agents.llm_runtime.deploy_config import DeploymentSpec
    from byzer_agents.llm_runtime.deployment import RayDeployment

__all__ = ["DeployResources", "RayLifecycle"]


@dataclasses.dataclass(frozen=True)
class DeployResources:
    """What each deployment gets: its workers, their CPUs and GPUs, and the engine they run
    (None: the fastest engine here for the model, ``engine_choice.choose_engine``)."""

    num_workers: int = 1
    # Few CPUs per worker, so a 2-core machine holds a model, a server and a second one.
    cpus_per_worker: float = 0.5
    gpus_per_worker: float = 0.0
    infer_backend: InferBackend | None = None

    def replace(
        self,
        *,
        num_workers: int | None = None,
        cpus_per_worker: float | None = None,
        gpus_per_worker: float | None = None,
        infer_backend: InferBackend | str | None = None,
    ) -> DeployResources:
        """These resources with the values given (None keeps the value here)."""
        change: dict[str, Any] = {
            "num_workers": num_workers,
            "cpus_per_worker": cpus_per_worker,
            "gpus_per_worker": gpus_per_worker,
            "infer_backend": None if infer_backend is None else InferBackend.parse(infer_backend),
        }
        return dataclasses.replace(self, **{k: v for k, v in change.items() if v is not None})


class RayLifecycle:
    """Deployments on the Ray cluster at ``address`` (or ``RAY_ADDRESS``, or the one running
    here; the embedded local cluster is started when none runs), joined on first use."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self.defaults = DeployResources()
        """What ``deploy`` gives a deployment when the call names no resources."""

    def names(self) -> list[str]:
        """Every deployment on the cluster, by name."""
        return list(self._deployment_module().deployment_names())

    def find(self, udf_name: str) -> RayDeployment | None:
        """The deployment called ``udf_name``, made by this or any other process; None if none."""
        found: RayDeployment | None = self._deployment_module().find(udf_name)
        return found

    def spec(
        self,
        model_path: str | os.PathLike[str] | None,
        pretrained_model_type: str,
        udf_name: str | None,
        infer_params: Mapping[str, Any] | None,
        resources: DeployResources,
    ) -> DeploymentSpec:
        """The checked spec of a deployment: bad types, paths and infer_params fail here, before
        a worker starts. ``saas/<provider>`` types need no model_path."""
        from byzer_agents.llm_runtime.deploy_config import (
            DeploymentSpec,
            InferParams,
            parse_model_type,
        )
        from byzer_agents.llm_runtime.engine_choice import choose_engine

        model_type = parse_model_type(pretrained_model_type)
        if not model_path and model_type.kind != "saas":
            raise ConfigurationError(f"deploying {pretrained_model_type!r} needs a model_path")
        default_name = Path(str(model_path)).stem if model_path else model_type.name.split("/")[-1]
        params = InferParams.parse(infer_params)
        engine = choose_engine(
            str(model_path or ""),
            model_type,
            params,
            gpus_per_worker=resources.gpus_per_worker,
            asked=resources.infer_backend,
        )
        return DeploymentSpec(
            udf_name=udf_name or default_name.replace(" ", "_"),
            model_path=str(model_path or ""),
            model_type=model_type,
            infer_params=params,
            num_workers=resources.num_workers,
            cpus_per_worker=resources.cpus_per_worker,
            gpus_per_worker=resources.gpus_per_worker,
            infer_backend=engine.infer_backend,
            engine_reason=engine.reason,
        )

    def deploy(self, spec: DeploymentSpec) -> RayDeployment:
        """Start ``spec``'s workers and wait until each has loaded its model."""
        deployment: RayDeployment = self._deployment_module().deploy(spec)
        return deployment

    def undeploy(self, udf_name: str) -> bool:
        """Remove the deployment called ``udf_name``; False when there was none."""
        return bool(self._deployment_module().undeploy(udf_name))

    def _deployment_module(self) -> ModuleType:
        """The deployment module, with the cluster joined (started if need be)."""
        from byzer_agents.llm_runtime import cluster, deployment

        cluster.connect(self.address)
        return deployment
