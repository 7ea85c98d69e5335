"""The console logger of gpuledger's runs: Dagster's colored console logger, with the long lists of
names that some of Dagster's messages carry cut to their first few and a count. A dbt asset with
nothing to rebuild is told it "did not yield or return expected outputs" and then named all of
them: a line of about 4,000 characters in every quiet run. The Dagster UI keeps the whole event."""

import logging
import re

import dagster as dg

SHOWN = 3  # the names a long list keeps
# a Python set or list of two or more quoted names, as Dagster writes one into a message
NAME_LIST = re.compile(r"([{\[])('[^']*'(?:, '[^']*')+)([}\]])")


def shorten(message: str) -> str:
    def cut(match: re.Match[str]) -> str:
        names = match.group(2).split(", ")
        if len(names) <= SHOWN + 1:
            return match.group(0)
        return f"{match.group(1)}{', '.join(names[:SHOWN])}, ... {len(names) - SHOWN} more{match.group(3)}"

    return NAME_LIST.sub(cut, message)


class ShortLists(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = shorten(record.getMessage()), ()
        return True


@dg.logger(dg.colored_console_logger.config_schema, description="Dagster's colored console logger, long name "
           "lists cut to their first few names and a count.")
def console(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = dg.colored_console_logger.logger_fn(init_context)
    log.addFilter(ShortLists())
    return log
