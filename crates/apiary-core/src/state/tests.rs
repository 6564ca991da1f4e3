//! The transition table restated independently, row by row, and checked against `decide`
//! for every (from, to, actor) triple.

use super::*;
use proptest::prelude::*;
use ActorKind::{Box as B, Human as H, System as Sys};
use NotifyEvent as N;
use SideEffect as E;

const ACTIVE: [AgentStatus; 9] = [
    S::Queued,
    S::Provisioning,
    S::Speccing,
    S::SpecReady,
    S::SpecApproved,
    S::Implementing,
    S::PrReady,
    S::ChangesRequested,
    S::Failed,
];

/// Every allowed (from, to, actor) with its side effects, expanded from DESIGN §2.
fn expected_rows() -> Vec<(AgentStatus, AgentStatus, ActorKind, Vec<SideEffect>)> {
    let mut rows = vec![
        (S::None, S::Queued, H, vec![E::DrainQueue]),
        (S::Cancelled, S::Queued, H, vec![E::DrainQueue]),
        (S::Merged, S::Queued, H, vec![E::DrainQueue]),
        (S::Failed, S::Queued, H, vec![E::DrainQueue]),
        (S::Queued, S::Provisioning, Sys, vec![E::ProvisionBox]),
        (S::Provisioning, S::Speccing, B, vec![]),
        (S::Provisioning, S::Speccing, Sys, vec![]),
        (S::Speccing, S::SpecReady, B, vec![E::Notify(N::SpecReady)]),
        (S::SpecReady, S::Speccing, H, vec![E::DispatchSpecRevise]),
        (S::SpecReady, S::SpecApproved, H, vec![E::DispatchImplement]),
        (S::SpecApproved, S::Implementing, Sys, vec![]),
        (S::Implementing, S::SpecApproved, Sys, vec![]),
        (S::Implementing, S::PrReady, B, vec![E::Notify(N::PrReady)]),
        (S::PrReady, S::ChangesRequested, H, vec![E::DispatchChanges]),
        (
            S::PrReady,
            S::ChangesRequested,
            Sys,
            vec![E::DispatchChanges],
        ),
        (S::ChangesRequested, S::Implementing, Sys, vec![]),
        (S::ChangesRequested, S::PrReady, Sys, vec![]),
        (S::PrReady, S::Merged, H, vec![E::TearDown]),
    ];
    for from in ACTIVE {
        if from != S::Failed {
            for actor in [B, Sys] {
                rows.push((
                    from,
                    S::Failed,
                    actor,
                    vec![E::Notify(N::Failed), E::TearDownAfterGrace],
                ));
            }
        }
        rows.push((from, S::Cancelled, H, vec![E::TearDown]));
    }
    rows
}

#[test]
fn every_row_of_the_table_is_allowed_with_its_side_effects() {
    for (from, to, actor, effects) in expected_rows() {
        assert_eq!(
            decide(from, to, actor),
            Ok(Decision::Apply(effects.clone())),
            "{from} -> {to} as {actor}"
        );
    }
}

#[test]
fn every_triple_outside_the_table_is_refused_and_names_the_allowed_targets() {
    let rows = expected_rows();
    let mut refused = 0;
    for from in AgentStatus::ALL {
        for to in AgentStatus::ALL {
            for actor in ActorKind::ALL {
                let result = decide(from, to, actor);
                if from == to {
                    assert_eq!(result, Ok(Decision::NoOp));
                    continue;
                }
                if rows
                    .iter()
                    .any(|(f, t, a, _)| (*f, *t, *a) == (from, to, actor))
                {
                    continue;
                }
                refused += 1;
                let allowed: Vec<AgentStatus> = rows
                    .iter()
                    .filter(|(f, _, a, _)| *f == from && *a == actor)
                    .map(|(_, t, _, _)| *t)
                    .collect();
                match result {
                    Err(TransitionError::Invalid {
                        from: f,
                        to: t,
                        actor: a,
                        allowed: got,
                    }) => {
                        assert_eq!((f, t, a), (from, to, actor));
                        let mut got_sorted = got.clone();
                        got_sorted.sort();
                        let mut want = allowed.clone();
                        want.sort();
                        want.dedup();
                        assert_eq!(got_sorted, want, "allowed targets from {from} as {actor}");
                    }
                    other => panic!("{from} -> {to} as {actor} should be refused, got {other:?}"),
                }
            }
        }
    }
    // 12 * 11 * 3 ordered pairs with an actor, less the allowed ones.
    assert_eq!(refused, 12 * 11 * 3 - rows.len());
}

#[test]
fn boxes_can_only_report_progress_and_errors() {
    for (from, to, actor, _) in expected_rows() {
        if actor == B {
            assert!(
                matches!(
                    (from, to),
                    (S::Provisioning, S::Speccing)
                        | (S::Speccing, S::SpecReady)
                        | (S::Implementing, S::PrReady)
                        | (_, S::Failed)
                ),
                "{from} -> {to} must not be a box row"
            );
        }
    }
}

#[test]
fn statuses_round_trip_through_their_spelling() {
    for s in AgentStatus::ALL {
        assert_eq!(s.as_str().parse::<AgentStatus>(), Ok(s));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            format!("\"{}\"", s.as_str())
        );
    }
    assert!("bogus".parse::<AgentStatus>().is_err());
}

fn any_status() -> impl Strategy<Value = AgentStatus> {
    proptest::sample::select(AgentStatus::ALL.to_vec())
}
fn any_actor() -> impl Strategy<Value = ActorKind> {
    proptest::sample::select(ActorKind::ALL.to_vec())
}

proptest! {
    /// Random requests applied to a task never leave the table, and asking again for the
    /// status a task already has is a no-op that asks for no job.
    #[test]
    fn random_sequences_stay_in_the_table(steps in proptest::collection::vec((any_status(), any_actor()), 1..60)) {
        let rows = expected_rows();
        let mut current = S::None;
        for (to, actor) in steps {
            match decide(current, to, actor) {
                Ok(Decision::Apply(effects)) => {
                    let row = rows.iter().find(|(f, t, a, _)| (*f, *t, *a) == (current, to, actor));
                    prop_assert!(row.is_some(), "{} -> {} as {} is not a row", current, to, actor);
                    prop_assert_eq!(&row.unwrap().3, &effects);
                    current = to;
                    prop_assert_eq!(decide(current, current, actor), Ok(Decision::NoOp));
                }
                Ok(Decision::NoOp) => prop_assert_eq!(current, to),
                Err(TransitionError::Invalid { allowed, .. }) => {
                    prop_assert!(!allowed.contains(&to));
                }
            }
        }
    }
}
