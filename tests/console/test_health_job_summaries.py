"""What the Health page's Schedules table says a job did: words, not a Python repr."""

from returnbridge.flows.confirm.queue import CycleResult


def test_the_credit_note_confirmation_job_reports_in_words() -> None:
    assert str(CycleResult(pushed=2, soap_batches=1, late=3)) == (
        "2 return(s) confirmed from Khaos order statuses, 1 SOAP check(s) queued, "
        "3 past the import deadline")
