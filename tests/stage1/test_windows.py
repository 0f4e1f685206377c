"""Windows of the output error (sysid.stage1.windows): held-out blocks, the lead-in of sparse records, and the
longest span in integration steps."""

from sysid.stage1.windows import WindowPlan, held_out_lengths, held_out_samples, lead_in, within_span


def test_held_out_samples_need_a_held_out_window_and_two_training_windows():
    assert held_out_samples(4 * 40, 40) is None  # the fifth block is one sample: no held-out window
    held = held_out_samples(7 * 40, 40)  # a sparse record: one held-out window, six to train on
    assert held is not None and held.sum() == 40 and held[160:200].all()
    held = held_out_samples(2 * 5 * 40 - 1, 40, experiment_starts=(0, 200))  # two experiments of 200 samples
    assert held is not None and held.sum() == 80 and held[160:200].all() and held[360:400].all()


def test_lead_in_starts_sparse_records_with_short_windows():
    assert lead_in((10, 20, 40), 1) == (10, 20, 40)  # Euler records: as configured
    assert lead_in((10, 20, 40), 10) == (2, 4, 10, 20, 40)  # 10 steps per sample: from 2 samples (20 steps)
    assert lead_in((4, 8), 10) == (2, 4, 8)


def test_within_span_keeps_the_lengths_of_at_most_so_many_integration_steps():
    assert within_span((10, 20, 40, 80), 1, 400) == (10, 20, 40, 80)  # Euler records: 80 steps at most
    assert within_span((10, 20, 40, 80), 10, 400) == (10, 20, 40)  # 10 steps per sample: 800 steps left out
    assert within_span((40, 80), 20, 400) == (40,)  # none within the span: the shortest stays
    assert within_span((), 10, 400) == ()  # the output error off


def test_held_out_lengths_leave_out_the_lengths_too_long_for_a_held_out_block():
    windows, held = held_out_lengths(7 * 40, (10, 20, 40, 80))  # blocks of 80: no fifth one to hold out
    assert windows == (10, 20, 40) and held is not None and held.sum() == 40
    windows, held = held_out_lengths(2881, (10, 20, 40, 80))
    assert windows == (10, 20, 40, 80) and held is not None and held[4 * 80 : 5 * 80].all()
    assert held_out_lengths(30, (10, 20)) == ((10, 20), None)  # not even 10: all lengths, no comparison


def test_a_window_plan_spans_leads_in_and_holds_out_in_that_order():
    plan = WindowPlan((10, 20, 40, 80), 400)
    lengths, held = plan.for_record(2881, 1)
    assert lengths == (10, 20, 40, 80) and held is not None and held[4 * 80 : 5 * 80].all()  # Euler: blocks of 80
    assert plan.for_record(288, 10)[0] == (2, 4, 10, 20, 40)  # sparse: 80 samples are 800 steps
    assert plan.for_record(120, 10)[0] == (2, 4, 10, 20)  # 120 samples hold out no block of 40
    assert WindowPlan((10, 20, 40, 80)).for_record(2881, 10)[0] == (2, 4, 10, 20, 40, 80)  # no cap
