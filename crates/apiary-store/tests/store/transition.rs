//! The transition function: table check, task update, audit event and jobs in one transaction.

use apiary_core::{AgentStatus, ProjectAccess, Role, SideEffect};
use apiary_store::{Actor, NewUser, Store, StoreError, TaskPatch, TransitionRequest, User};
use apiary_testkit::test_store;

pub async fn setup(store: &Store) -> (User, String) {
    let (admin, _, task) = apiary_testkit::seed_task(store).await;
    (admin, task.id)
}

fn human(u: &User) -> Actor {
    Actor::Human(u.id.clone())
}

#[tokio::test]
async fn a_transition_writes_task_event_and_jobs_together() {
    let db = test_store().await;
    let store = &db.store;
    let (admin, task) = setup(store).await;
    let out = store
        .transition(TransitionRequest::new(
            &task,
            AgentStatus::Queued,
            human(&admin),
        ))
        .await
        .unwrap();
    assert!(out.changed);
    assert_eq!((out.from, out.to), (AgentStatus::None, AgentStatus::Queued));
    assert_eq!(out.effects, vec![SideEffect::DrainQueue]);
    let t = store.get_task(&task).await.unwrap();
    assert_eq!(t.agent_status, AgentStatus::Queued);
    assert!(t.queued_at.is_some());
    assert_eq!(t.queue_position, Some(1));
    let events = store.list_task_events(&task).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(Some(events[0].id), out.event_id);
    assert_eq!(events[0].actor_kind, "human");
    assert_eq!(events[0].actor_id.as_deref(), Some(admin.id.as_str()));
    assert_eq!(events[0].to_status.as_deref(), Some("queued"));
    let jobs = store.list_task_jobs(&task).await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>(),
        vec!["drain_queue"]
    );
}

#[tokio::test]
async fn a_repeated_transition_is_a_no_op_without_event_or_job() {
    let db = test_store().await;
    let store = &db.store;
    let (admin, task) = setup(store).await;
    store
        .transition(TransitionRequest::new(
            &task,
            AgentStatus::Queued,
            human(&admin),
        ))
        .await
        .unwrap();
    store
        .transition(TransitionRequest::new(
            &task,
            AgentStatus::Provisioning,
            Actor::System,
        ))
        .await
        .unwrap();
    store
        .transition(TransitionRequest::new(
            &task,
            AgentStatus::Speccing,
            Actor::Box("b1".into()),
        ))
        .await
        .unwrap();
    let before_events = store.list_task_events(&task).await.unwrap().len();
    let before_jobs = store.list_task_jobs(&task).await.unwrap().len();
    let again = store
        .transition(TransitionRequest::new(
            &task,
            AgentStatus::Speccing,
            Actor::Box("b1".into()),
        ))
        .await
        .unwrap();
    assert!(!again.changed);
    assert!(again.effects.is_empty());
    assert_eq!(again.event_id, None);
    assert_eq!(
        store.list_task_events(&task).await.unwrap().len(),
        before_events
    );
    assert_eq!(
        store.list_task_jobs(&task).await.unwrap().len(),
        before_jobs
    );
}

#[tokio::test]
async fn an_invalid_transition_changes_nothing_and_names_the_allowed_targets() {
    let db = test_store().await;
    let store = &db.store;
    let (admin, task) = setup(store).await;
    let err = store
        .transition(TransitionRequest::new(
            &task,
            AgentStatus::SpecApproved,
            human(&admin),
        ))
        .await
        .unwrap_err();
    match err {
        StoreError::InvalidTransition {
            from, to, allowed, ..
        } => {
            assert_eq!((from, to), (AgentStatus::None, AgentStatus::SpecApproved));
            assert_eq!(allowed, vec![AgentStatus::Queued]);
        }
        other => panic!("expected InvalidTransition, got {other:?}"),
    }
    let t = store.get_task(&task).await.unwrap();
    assert_eq!(t.agent_status, AgentStatus::None);
    assert!(store.list_task_events(&task).await.unwrap().is_empty());
    assert!(store.list_task_jobs(&task).await.unwrap().is_empty());
    // A box may not do a human's row.
    store
        .transition(TransitionRequest::new(
            &task,
            AgentStatus::Queued,
            human(&admin),
        ))
        .await
        .unwrap();
    let err = store
        .transition(TransitionRequest::new(
            &task,
            AgentStatus::Cancelled,
            Actor::Box("b".into()),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidTransition { .. }));
}

#[tokio::test]
async fn the_loop_counts_rounds_and_failure_keeps_the_error_and_schedules_teardown_after_grace() {
    let db = test_store().await;
    let store = &db.store;
    let (admin, task) = setup(store).await;
    let b = || Actor::Box("box".into());
    for (to, actor) in [
        (AgentStatus::Queued, human(&admin)),
        (AgentStatus::Provisioning, Actor::System),
        (AgentStatus::Speccing, b()),
        (AgentStatus::SpecReady, b()),
        (AgentStatus::SpecApproved, human(&admin)),
        (AgentStatus::Implementing, Actor::System),
        (AgentStatus::PrReady, b()),
        (AgentStatus::ChangesRequested, human(&admin)),
        (AgentStatus::Implementing, Actor::System),
    ] {
        store
            .transition(TransitionRequest::new(&task, to, actor))
            .await
            .unwrap();
    }
    assert_eq!(store.get_task(&task).await.unwrap().round, 2);
    let out = store
        .transition(
            TransitionRequest::new(&task, AgentStatus::Failed, Actor::System)
                .with_error("box vanished"),
        )
        .await
        .unwrap();
    assert_eq!(out.effects.len(), 2);
    let t = store.get_task(&task).await.unwrap();
    assert_eq!(t.last_error.as_deref(), Some("box vanished"));
    let jobs = store.list_task_jobs(&task).await.unwrap();
    let grace = jobs
        .iter()
        .find(|j| j.kind == "teardown_after_grace")
        .expect("grace teardown job");
    let settings = store.settings().await.unwrap();
    assert!(grace.run_at >= t.status_changed_at + settings.timeouts.failed_grace_s as i64 * 1000);
    // One delivery per enabled channel (by default, the log channel).
    let notify = jobs
        .iter()
        .rfind(|j| j.kind == "deliver")
        .expect("a delivery job");
    assert_eq!(notify.payload_json()["event"], "FAILED");
    assert_eq!(notify.payload_json()["channel"], "log");
    // Retry clears the error and counts the attempt.
    store
        .transition(TransitionRequest::new(
            &task,
            AgentStatus::Queued,
            human(&admin),
        ))
        .await
        .unwrap();
    let t = store.get_task(&task).await.unwrap();
    assert_eq!((t.last_error, t.attempt, t.round), (None, 1, 0));
}

#[tokio::test]
async fn assigning_to_the_agent_hands_over_and_unassigning_cancels_in_one_code_path() {
    let db = test_store().await;
    let store = &db.store;
    let (admin, task) = setup(store).await;
    let agent = store.agent_user().await.unwrap();
    let (t, outcome) = store
        .update_task(
            &task,
            TaskPatch {
                assignee_id: Some(Some(agent.id.clone())),
                ..Default::default()
            },
            &admin,
        )
        .await
        .unwrap();
    assert_eq!(t.agent_status, AgentStatus::Queued);
    assert_eq!(t.assignee_id.as_deref(), Some(agent.id.as_str()));
    assert!(outcome.unwrap().changed);
    let (t, outcome) = store
        .update_task(
            &task,
            TaskPatch {
                assignee_id: Some(None),
                ..Default::default()
            },
            &admin,
        )
        .await
        .unwrap();
    assert_eq!(t.agent_status, AgentStatus::Cancelled);
    assert_eq!(t.assignee_id, None);
    assert_eq!(outcome.unwrap().effects, vec![SideEffect::TearDown]);
    // The hand-off action is the same path, and re-queues a cancelled task.
    let out = store.hand_off(&task, &admin).await.unwrap();
    assert_eq!(
        (out.from, out.to),
        (AgentStatus::Cancelled, AgentStatus::Queued)
    );
    assert_eq!(
        store.get_task(&task).await.unwrap().assignee_id,
        Some(agent.id)
    );
}

#[tokio::test]
async fn an_edit_whose_transition_is_refused_is_rolled_back_whole() {
    let db = test_store().await;
    let store = &db.store;
    let (admin, task) = setup(store).await;
    let agent = store.agent_user().await.unwrap();
    store.hand_off(&task, &admin).await.unwrap();
    // Someone else takes it, then gives it back while the agent is still queued: the
    // transition back to queued is a no-op, so the edit goes through.
    let member = store
        .create_user(NewUser {
            email: "m@example.test".into(),
            name: "M".into(),
            role: Role::Member,
            password: None,
        })
        .await
        .unwrap();
    let project = store.get_task(&task).await.unwrap().project_id;
    store
        .set_project_member(&project, &member.id, ProjectAccess::Write)
        .await
        .unwrap();
    store
        .transition(TransitionRequest::new(
            &task,
            AgentStatus::Provisioning,
            Actor::System,
        ))
        .await
        .unwrap();
    store
        .transition(TransitionRequest::new(
            &task,
            AgentStatus::Speccing,
            Actor::System,
        ))
        .await
        .unwrap();
    // Unassign (cancels), then a title edit plus assignment to the agent re-queues.
    store
        .update_task(
            &task,
            TaskPatch {
                assignee_id: Some(Some(member.id.clone())),
                ..Default::default()
            },
            &admin,
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_task(&task).await.unwrap().agent_status,
        AgentStatus::Cancelled
    );
    // Failing mid-way: a title that is too long refuses the whole edit, including the hand-off.
    let err = store
        .update_task(
            &task,
            TaskPatch {
                title: Some("x".repeat(600)),
                assignee_id: Some(Some(agent.id.clone())),
                ..Default::default()
            },
            &admin,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { field: "title", .. }));
    let t = store.get_task(&task).await.unwrap();
    assert_eq!(t.agent_status, AgentStatus::Cancelled);
    assert_eq!(t.assignee_id, Some(member.id));
}

/// One attempt of `task` from hand-off to a requested change: approved with `note`, reviewed
/// with one comment `review`.
async fn one_attempt(store: &Store, task: &str, admin: &User, note: Option<&str>, review: &str) {
    use apiary_store::{NewReviewComment, TaskWrites};
    let boxed = Actor::Box("b1".into());
    let steps = [
        (AgentStatus::Queued, human(admin), TaskWrites::default()),
        (
            AgentStatus::Provisioning,
            Actor::System,
            TaskWrites::default(),
        ),
        (AgentStatus::Speccing, boxed.clone(), TaskWrites::default()),
        (
            AgentStatus::SpecReady,
            boxed.clone(),
            TaskWrites {
                spec: Some("s".into()),
                ..Default::default()
            },
        ),
        (
            AgentStatus::SpecApproved,
            human(admin),
            TaskWrites {
                note: note.map(str::to_string),
                ..Default::default()
            },
        ),
        (
            AgentStatus::Implementing,
            Actor::System,
            TaskWrites::default(),
        ),
        (AgentStatus::PrReady, boxed, TaskWrites::default()),
        (
            AgentStatus::ChangesRequested,
            human(admin),
            TaskWrites {
                review_comments: vec![NewReviewComment {
                    author_id: Some(admin.id.clone()),
                    author_name: None,
                    body: review.into(),
                    path: None,
                    line: None,
                }],
                ..Default::default()
            },
        ),
    ];
    for (to, actor, writes) in steps {
        store
            .transition(TransitionRequest::new(task, to, actor).with_writes(writes))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_retry_starts_clean_and_each_approval_carries_only_its_own_note() {
    let db = test_store().await;
    let store = &db.store;
    let (admin, task) = setup(store).await;
    one_attempt(
        store,
        &task,
        &admin,
        Some("careful with the footer"),
        "first attempt's review",
    )
    .await;
    let t = store.get_task(&task).await.unwrap();
    assert_eq!(t.approve_note.as_deref(), Some("careful with the footer"));
    let round = t.round;
    store
        .transition(TransitionRequest::new(
            &task,
            AgentStatus::Failed,
            Actor::System,
        ))
        .await
        .unwrap();

    // The retry: the same round of the new attempt holds only its own comment, and an
    // approval without a note has none.
    let before = store.get_task(&task).await.unwrap().attempt;
    one_attempt(store, &task, &admin, None, "second attempt's review").await;
    let t = store.get_task(&task).await.unwrap();
    assert_eq!(t.attempt, before + 1);
    assert_eq!(t.round, round, "the round starts over");
    assert_eq!(t.approve_note, None, "the last attempt's note is gone");
    let comments = store.review_comments(&task, round).await.unwrap();
    assert_eq!(
        comments.iter().map(|c| c.body.as_str()).collect::<Vec<_>>(),
        vec!["second attempt's review"]
    );
}
