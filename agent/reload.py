"""``cmd/reload`` and SIGHUP: re-read the config file and the active model without a restart.

A bad config file is refused as a whole and the running configuration kept, with one line saying
why (an operator editing over SSH gets the typo back, the board keeps working). A good one takes
effect at once for the sections that can change while running (``[vision]``, ``[models]``); the
answer names the sections whose changes wait for a restart (the broker, the board, storage...).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from agent.command_table import CommandError
from agent.config import ConfigError, load_config
from agent.models.settings import model_settings

if TYPE_CHECKING:
    from agent.daemon import Agent

log = logging.getLogger(__name__)

LIVE_SECTIONS = ("vision", "models")
"""Sections a reload applies; the others are compared and reported as needing a restart."""


def reload_agent(agent: Agent) -> dict[str, Any]:
    try:
        new = load_config(agent.config_file)
    except ConfigError as exc:
        first = exc.errors[0] if exc.errors else str(exc)
        log.error("reload refused, running config kept error=%s", first)
        raise CommandError(f"config refused, the running one is kept: {first}") from exc
    old = agent.config
    sections = [name for name in type(old).model_fields if name not in LIVE_SECTIONS]
    restart = [name for name in sections if getattr(new, name) != getattr(old, name)]
    live = {name: getattr(new, name) for name in LIVE_SECTIONS if hasattr(new, name)}
    agent.config = old.model_copy(update=live)
    if agent.models is not None:
        from agent.daemon import classifier_builder

        agent.models.configure(model_settings(agent.config), classifier_builder(agent.config))
        agent.use_classifier(agent.models.reload(), agent.models.refused)
    model_id = getattr(agent.classifier, "model_id", None)
    log.info("reloaded model=%s restart_needed=%s", model_id, ",".join(restart) or "-")
    return {"model": model_id, "refused": agent.vision_error, "restart_needed": restart}
