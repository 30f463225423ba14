"""Which activity failures are worth retrying.

A write that failed because PostgreSQL was away succeeds later; one that failed on its data (a NUL character
PostgreSQL refuses, a number too large for its column, a template that cannot render the values) fails the
same way every time. Those are raised as non-retryable, so the workflow hands the step to an operator at
once (`needs_operator`) instead of retrying it to the end of its retry policy."""

from __future__ import annotations

from typing import Any

import asyncpg
import jinja2
import pydantic
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

# Failures of the data itself; anything else (connections, timeouts, a server restarting) is retried.
UNSTORABLE: tuple[type[BaseException], ...] = (
    asyncpg.DataError,  # invalid text (NUL), numeric overflow, bad dates…
    asyncpg.IntegrityConstraintViolationError,  # a check or not-null constraint the row can never meet
    pydantic.ValidationError,
    jinja2.TemplateError,
    UnicodeError,
    OverflowError,
    RecursionError,
)


def unstorable_type(err: BaseException) -> str:
    return f"Unstorable{type(err).__name__}"


class _Inbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await self.next.execute_activity(input)
        except UNSTORABLE as err:
            activity.logger.warning("activity %s: data that can never be written: %s",
                                    activity.info().activity_type, type(err).__name__)
            # The message names the kind of failure, never the data (it may be personal or huge).
            raise ApplicationError(
                f"{type(err).__name__}: the data of this step cannot be written", type=unstorable_type(err),
                non_retryable=True,
            ) from None


class DataErrorsAreFinal(Interceptor):
    """Worker interceptor: data errors in any activity are non-retryable."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next)
