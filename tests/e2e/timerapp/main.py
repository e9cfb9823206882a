"""A FunctionApp with one timer, for tests/e2e/test_funchost_timer.py: each run appends a line."""

import os

import azure.functions as func

app = func.FunctionApp()


@app.timer_trigger(schedule="* * * * * *", arg_name="timer", run_on_startup=True)
def tick(timer: func.TimerRequest) -> None:
    with open(os.environ["TICK_FILE"], "a", encoding="utf-8") as out:
        out.write(f"past_due={timer.past_due}\n")
