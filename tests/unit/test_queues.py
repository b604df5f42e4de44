"""Queue names and routing: user tasks only ever reach the queue of a local user."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kombu import Queue

from gwms_tasks.errors import PermanentError
from gwms_tasks.queues import (
    FACTORY_QUEUE,
    FACTORY_TASKS,
    USER_TASKS,
    TaskName,
    route_task,
    user_queue,
    username_of_queue,
)

usernames = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,31}\Z")


@pytest.mark.parametrize(
    ("username", "queue"),
    [
        ("fe_cms", "gwms.user.fe_cms"),
        ("_svc", "gwms.user._svc"),
        ("fe.dune-2", "gwms.user.fe.dune-2"),
        ("a" * 32, "gwms.user." + "a" * 32),
    ],
)
def test_user_queue_is_named_after_the_user(username: str, queue: str) -> None:
    assert user_queue(username) == queue


@pytest.mark.parametrize(
    "username",
    ["", "1user", "fe cms", "fe:cms", "fe/cms", "fe*", "a" * 33, "-dash", "ünï"],
)
def test_invalid_user_name_has_no_queue(username: str) -> None:
    with pytest.raises(PermanentError, match="invalid local user name"):
        user_queue(username)


@given(usernames)
def test_user_of_a_user_queue_is_found_again(username: str) -> None:
    assert username_of_queue(user_queue(username)) == username


@pytest.mark.parametrize(
    "queue", [FACTORY_QUEUE, "celery", "gwms.user.", "gwms.user.bad name", "gwms.users.fe"]
)
def test_other_queues_belong_to_no_user(queue: str) -> None:
    assert username_of_queue(queue) is None


def test_every_task_is_either_a_factory_or_a_user_task() -> None:
    assert FACTORY_TASKS.isdisjoint(USER_TASKS)
    assert set(TaskName) == FACTORY_TASKS | USER_TASKS


@pytest.mark.parametrize("task", sorted(FACTORY_TASKS))
def test_factory_tasks_are_routed_to_the_factory_queue(task: TaskName) -> None:
    assert route_task(task, (), {}, {}) == {"queue": FACTORY_QUEUE}


@pytest.mark.parametrize("task", sorted(USER_TASKS))
@pytest.mark.parametrize("queue", ["gwms.user.fe_cms", Queue("gwms.user.fe_cms")])
def test_user_task_sent_to_a_user_queue_stays_there(task: TaskName, queue: object) -> None:
    assert route_task(task, (), {}, {"queue": queue}) == {"queue": "gwms.user.fe_cms"}


@pytest.mark.parametrize("task", sorted(USER_TASKS))
@pytest.mark.parametrize("options", [{}, {"queue": FACTORY_QUEUE}, {"queue": Queue("celery")}])
def test_user_task_without_a_user_queue_is_refused(
    task: TaskName, options: dict[str, object]
) -> None:
    with pytest.raises(PermanentError, match="must be sent to a user queue"):
        route_task(task, (), {}, options)


def test_tasks_of_other_applications_are_left_to_celery() -> None:
    assert route_task("celery.ping", (), {}, {}) is None
