"""Entity-component-system core: world, schedule, deferred commands, double-buffered messages."""
from engine.ecs.commands import Commands
from engine.ecs.messages import Messages
from engine.ecs.schedule import Schedule, Stage, System, SystemCycleError, UnknownSystemError, optional
from engine.ecs.world import Entity, World

__all__ = ["Commands", "Entity", "Messages", "Schedule", "Stage", "System", "SystemCycleError", "UnknownSystemError",
           "World", "optional"]
