//! Cap and queue, the watchdog's steps, parking and teardown retries, with an in-memory box
//! provider and a manual clock.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use apiary_core::{AgentStatus, ManualClock, Role};
use apiary_orchestrator::{Metrics, Orchestrator, Worker};
use apiary_store::{Actor, NewProject, NewTask, ProjectPatch, Store, TransitionRequest, User};
use apiary_testkit::{test_store_manual, MemProvider, TestStore};

struct World {
    db: TestStore,
    clock: ManualClock,
    orch: Orchestrator,
    worker: Worker,
    boxes: Arc<MemProvider>,
    admin: User,
    project: String,
}

impl World {
    async fn new(cap: u32) -> World {
        let (db, clock) = test_store_manual().await;
        let store = db.store.clone();
        store.bootstrap(None, None).await.unwrap();
        let admin = store
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .find(|u| u.role == Role::Admin)
            .unwrap();
        let p = store
            .create_project(
                NewProject {
                    name: "P".into(),
                    description: "".into(),
                },
                &admin,
            )
            .await
            .unwrap();
        store
            .update_project(
                &p.id,
                ProjectPatch {
                    enabled: Some(true),
                    repo_url: Some("/srv/repo.git".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut s = store.settings().await.unwrap();
        s.agent_orchestration_enabled = true;
        s.max_concurrent_boxes = cap;
        store.save_settings(&s).await.unwrap();
        let boxes = Arc::new(MemProvider::default());
        let orch =
            Orchestrator::new(store, Arc::new(Metrics::default())).with_local_boxes(boxes.clone());
        orch.set_apiary_url("http://127.0.0.1:9");
        let worker = orch.worker().build();
        World {
            db,
            clock,
            orch,
            worker,
            boxes,
            admin,
            project: p.id,
        }
    }

    fn store(&self) -> &Store {
        &self.db.store
    }

    async fn task(&self, title: &str) -> String {
        let (t, _) = self
            .store()
            .create_task(
                &self.project,
                NewTask {
                    title: title.into(),
                    description: "".into(),
                    status: None,
                    assignee_id: None,
                },
                &self.admin,
            )
            .await
            .unwrap();
        t.id
    }

    async fn hand_off(&self, id: &str) {
        let o = self.store().hand_off(id, &self.admin).await.unwrap();
        self.orch.publish(&o);
        self.clock.advance_ms(1);
    }

    async fn status(&self, id: &str) -> AgentStatus {
        self.store().get_task(id).await.unwrap().agent_status
    }

    async fn to(&self, id: &str, to: AgentStatus, actor: Actor) {
        self.orch
            .transition(TransitionRequest::new(id, to, actor))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn cap_two_five_hand_offs_two_boxes_three_queued_in_order_and_a_freed_box_takes_the_oldest() {
    let w = World::new(2).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = w.task(&format!("t{i}")).await;
        w.hand_off(&id).await;
        ids.push(id);
    }
    w.worker.drain().await.unwrap();
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(w.status(id).await);
    }
    assert_eq!(
        &statuses[..2],
        &[AgentStatus::Provisioning, AgentStatus::Provisioning]
    );
    assert_eq!(&statuses[2..], &[AgentStatus::Queued; 3]);
    assert_eq!(w.boxes.boxes.lock().unwrap().len(), 2);
    for (i, id) in ids[2..].iter().enumerate() {
        assert_eq!(
            w.store().get_task(id).await.unwrap().queue_position,
            Some(i as i64 + 1)
        );
    }
    // One finishes (cancelled): its box goes, and the oldest queued task gets one.
    w.to(
        &ids[0],
        AgentStatus::Cancelled,
        Actor::Human(w.admin.id.clone()),
    )
    .await;
    w.worker.drain().await.unwrap();
    assert_eq!(w.status(&ids[2]).await, AgentStatus::Provisioning);
    assert_eq!(w.status(&ids[3]).await, AgentStatus::Queued);
    assert_eq!(w.boxes.boxes.lock().unwrap().len(), 2);
    assert_eq!(w.store().live_box_count().await.unwrap(), 2);
}

#[tokio::test]
async fn the_cap_holds_with_concurrent_drainers() {
    let w = World::new(2).await;
    for i in 0..6 {
        let id = w.task(&format!("t{i}")).await;
        let o = w.store().hand_off(&id, &w.admin).await.unwrap();
        let _ = o;
    }
    let mut handles = Vec::new();
    for _ in 0..4 {
        let store = w.store().clone();
        handles.push(tokio::spawn(async move {
            store.drain_queue(2).await.unwrap().len()
        }));
    }
    let mut moved = 0;
    for h in handles {
        moved += h.await.unwrap();
    }
    assert_eq!(moved, 2, "four drainers together moved exactly the cap");
    assert_eq!(w.store().live_box_count().await.unwrap(), 2);
}

#[tokio::test]
async fn the_kill_switch_provisions_nothing() {
    let w = World::new(5).await;
    let mut s = w.store().settings().await.unwrap();
    s.agent_orchestration_enabled = false;
    w.store().save_settings(&s).await.unwrap();
    let id = w.task("t").await;
    w.hand_off(&id).await;
    w.worker.drain().await.unwrap();
    assert_eq!(w.status(&id).await, AgentStatus::Queued);
    assert!(w.boxes.boxes.lock().unwrap().is_empty());
}

#[tokio::test]
async fn timeouts_vanished_boxes_orphans_and_a_never_timed_out_queue() {
    let w = World::new(1).await;
    let a = w.task("a").await;
    let b = w.task("b").await;
    w.hand_off(&a).await;
    w.hand_off(&b).await;
    w.worker.drain().await.unwrap();
    assert_eq!(w.status(&a).await, AgentStatus::Provisioning);
    assert_eq!(w.status(&b).await, AgentStatus::Queued);
    let installation = w.store().installation_id().await.unwrap();
    w.boxes.add("orphan-1", "no-such-task");
    w.boxes
        .boxes
        .lock()
        .unwrap()
        .get_mut("orphan-1")
        .unwrap()
        .labels
        .insert(
            apiary_boxes::INSTALLATION_LABEL.into(),
            installation.clone(),
        );
    // A box of another installation on the same host: never this one's to sweep.
    w.boxes.add("theirs-1", "their-task");
    w.boxes
        .boxes
        .lock()
        .unwrap()
        .get_mut("theirs-1")
        .unwrap()
        .labels
        .insert(
            apiary_boxes::INSTALLATION_LABEL.into(),
            "inst-someone-else".into(),
        );

    // Past the provisioning budget: a fails; b, capacity-blocked, does not time out.
    let budget = w.store().settings().await.unwrap().timeouts.provisioning_s as i64 * 1000;
    w.clock.advance_ms(budget + 1);
    let sum = w.orch.watchdog_pass("r1").await.unwrap();
    assert_eq!(sum.timed_out, 1);
    assert_eq!(sum.orphans, 1);
    let t = w.store().get_task(&a).await.unwrap();
    assert_eq!(t.agent_status, AgentStatus::Failed);
    assert!(t.last_error.unwrap().contains("timed out in provisioning"));
    assert_eq!(w.status(&b).await, AgentStatus::Queued);
    assert!(w
        .boxes
        .destroyed
        .lock()
        .unwrap()
        .contains(&"orphan-1".to_string()));
    assert!(w.boxes.boxes.lock().unwrap().contains_key("theirs-1"));
    assert_eq!(
        w.store().installation_id().await.unwrap(),
        installation,
        "one id for good"
    );

    // The failed box goes after the grace period; then b gets the free box.
    let grace = w.store().settings().await.unwrap().timeouts.failed_grace_s as i64 * 1000;
    w.clock.advance_ms(grace + 1);
    let sum = w.orch.watchdog_pass("r1").await.unwrap();
    assert_eq!(sum.failed_teardowns, 1);
    w.worker.drain().await.unwrap();
    assert!(w.store().get_task(&a).await.unwrap().box_torn_down);
    assert_eq!(w.status(&b).await, AgentStatus::Provisioning);

    // b's box vanishes (killed from outside): failed within one pass.
    w.to(&b, AgentStatus::Speccing, Actor::System).await;
    let box_b = w.store().get_task(&b).await.unwrap().box_id.unwrap();
    w.boxes.vanish(&box_b);
    let sum = w.orch.watchdog_pass("r1").await.unwrap();
    assert_eq!(sum.vanished, 1);
    let t = w.store().get_task(&b).await.unwrap();
    assert_eq!(
        (t.agent_status, t.last_error.as_deref()),
        (AgentStatus::Failed, Some("box vanished"))
    );
}

#[tokio::test]
async fn a_teardown_that_failed_succeeds_on_a_later_pass_and_one_replica_runs_a_pass() {
    let w = World::new(2).await;
    let a = w.task("a").await;
    w.hand_off(&a).await;
    w.worker.drain().await.unwrap();
    w.to(&a, AgentStatus::Speccing, Actor::System).await;
    w.boxes.down.store(true, Ordering::SeqCst);
    w.to(&a, AgentStatus::Cancelled, Actor::Human(w.admin.id.clone()))
        .await;
    w.worker.drain().await.unwrap();
    let t = w.store().get_task(&a).await.unwrap();
    assert!(
        !t.box_torn_down,
        "the destroy failed: the box is still on record"
    );
    assert!(
        t.control_secret_id.is_some(),
        "its secrets are kept for the retry"
    );
    // The provider comes back; after the job's backoff the retry goes through.
    w.boxes.down.store(false, Ordering::SeqCst);
    w.clock.advance_ms(60_000);
    let sum = w.orch.watchdog_pass("r1").await.unwrap();
    assert_eq!(
        sum.teardown_retries, 0,
        "the failed job still waits; the watchdog adds no second one"
    );
    w.worker.drain().await.unwrap();
    let t = w.store().get_task(&a).await.unwrap();
    assert!(t.box_torn_down);
    assert_eq!(t.control_secret_id, None);
    assert!(w.boxes.boxes.lock().unwrap().is_empty());

    // Leases: while r1 is in a pass (it holds the lease), r2's pass does nothing; once r1
    // gives it back, r2 runs.
    assert!(w.store().try_lease("watchdog", "r1", 30_000).await.unwrap());
    let sum = w.orch.watchdog_pass("r2").await.unwrap();
    assert!(sum.skipped);
    w.store().release_lease("watchdog", "r1").await.unwrap();
    assert!(!w.orch.watchdog_pass("r2").await.unwrap().skipped);
}

#[tokio::test]
async fn an_idle_box_waiting_on_a_human_is_parked_and_an_action_resumes_it() {
    let w = World::new(2).await;
    let a = w.task("a").await;
    w.hand_off(&a).await;
    w.worker.drain().await.unwrap();
    let b = Actor::Box("box".into());
    w.to(&a, AgentStatus::Speccing, b.clone()).await;
    w.to(&a, AgentStatus::SpecReady, b.clone()).await;
    let idle = w.store().settings().await.unwrap().timeouts.idle_s as i64 * 1000;
    w.clock.advance_ms(idle + 1);
    let sum = w.orch.watchdog_pass("r1").await.unwrap();
    assert_eq!(sum.parked, 1);
    w.worker.drain().await.unwrap();
    let t = w.store().get_task(&a).await.unwrap();
    assert!(t.box_torn_down && t.parked, "parked: {t:?}");
    assert_eq!(
        t.agent_status,
        AgentStatus::SpecReady,
        "parking keeps the status"
    );
    let old_box = t.box_id.clone();

    // The human approves: a fresh box is made before the dispatch.
    w.to(
        &a,
        AgentStatus::SpecApproved,
        Actor::Human(w.admin.id.clone()),
    )
    .await;
    w.worker.drain().await.unwrap();
    let t = w.store().get_task(&a).await.unwrap();
    assert!(!t.box_torn_down && !t.parked);
    assert_ne!(t.box_id, old_box);
    let (_, logs) = (0, w.store().list_logs(&a, 0, 10).await.unwrap());
    assert!(
        logs.iter().any(|l| l.line.starts_with("resuming")),
        "{logs:?}"
    );
}

#[tokio::test]
async fn a_cancel_racing_with_provisioning_destroys_the_box_it_made() {
    let w = World::new(2).await;
    let a = w.task("a").await;
    *w.boxes.cancel_during_create.lock().unwrap() =
        Some((w.store().clone(), a.clone(), w.admin.id.clone()));
    w.hand_off(&a).await;
    w.worker.drain().await.unwrap();
    let t = w.store().get_task(&a).await.unwrap();
    assert_eq!(t.agent_status, AgentStatus::Cancelled);
    assert!(t.box_torn_down, "{t:?}");
    assert!(
        w.boxes.boxes.lock().unwrap().is_empty(),
        "the box made during the race is gone"
    );
    assert_eq!(w.boxes.destroyed.lock().unwrap().len(), 1);
    assert_eq!(w.store().control_token(&a).await.unwrap(), None);
}

#[tokio::test]
async fn a_dispatch_that_ran_out_of_attempts_is_sent_again_and_its_budget_ends_it() {
    let w = World::new(1).await;
    let mut s = w.store().settings().await.unwrap();
    s.timeouts.provisioning_s = 30 * 24 * 3600;
    w.store().save_settings(&s).await.unwrap();
    let a = w.task("a").await;
    w.hand_off(&a).await;
    w.worker.drain().await.unwrap();
    let b = Actor::Box("box".into());
    w.to(&a, AgentStatus::Speccing, b.clone()).await;
    w.to(&a, AgentStatus::SpecReady, b.clone()).await;
    w.to(
        &a,
        AgentStatus::SpecApproved,
        Actor::Human(w.admin.id.clone()),
    )
    .await;
    // The box's control plane never answers: the dispatch spends all its attempts.
    let pending = |jobs: &[apiary_store::Job]| {
        jobs.iter()
            .filter(|j| {
                j.kind == "dispatch_implement" && (j.state == "pending" || j.state == "running")
            })
            .count()
    };
    for _ in 0..12 {
        w.worker.drain().await.unwrap();
        w.clock.advance_ms(700_000);
    }
    let jobs = w.store().list_task_jobs(&a).await.unwrap();
    assert_eq!(pending(&jobs), 0, "the first dispatch gave up: {jobs:?}");
    assert_eq!(
        w.status(&a).await,
        AgentStatus::SpecApproved,
        "stranded until now"
    );

    // The watchdog sends it again, once while it is in flight.
    let sum = w.orch.watchdog_pass("r1").await.unwrap();
    assert_eq!(sum.redispatched, 1, "{sum:?}");
    assert_eq!(pending(&w.store().list_task_jobs(&a).await.unwrap()), 1);
    let sum = w.orch.watchdog_pass("r1").await.unwrap();
    assert_eq!(sum.redispatched, 0, "{sum:?}");

    // Past the budget the task fails, naming why the dispatch did not get through.
    let mut s = w.store().settings().await.unwrap();
    s.timeouts.provisioning_s = 60;
    w.store().save_settings(&s).await.unwrap();
    let sum = w.orch.watchdog_pass("r1").await.unwrap();
    assert_eq!(sum.timed_out, 1, "{sum:?}");
    let t = w.store().get_task(&a).await.unwrap();
    assert_eq!(t.agent_status, AgentStatus::Failed);
    let error = t.last_error.unwrap_or_default();
    assert!(
        error.starts_with("timed out in spec_approved after 60 s: "),
        "{error}"
    );
    assert!(error.contains("control plane"), "{error}");
}

#[tokio::test]
async fn a_resumed_task_holds_its_slot_so_a_drain_never_passes_the_cap() {
    let w = World::new(1).await;
    let a = w.task("a").await;
    w.hand_off(&a).await;
    w.worker.drain().await.unwrap();
    let b = Actor::Box("box".into());
    w.to(&a, AgentStatus::Speccing, b.clone()).await;
    w.to(&a, AgentStatus::SpecReady, b).await;
    // Parked: its box goes, the only slot is free.
    w.store().detach_box(&a, true).await.unwrap();
    assert_eq!(w.store().live_box_count().await.unwrap(), 0);
    let queued = w.task("queued").await;
    let o = w.store().hand_off(&queued, &w.admin).await.unwrap();
    let _ = o;
    // The resume takes the slot first; the drain that comes while its box is being made
    // finds none free.
    assert!(w.store().reserve_box_slot(&a, 1).await.unwrap());
    assert!(w.store().drain_queue(1).await.unwrap().is_empty());
    assert_eq!(w.store().live_box_count().await.unwrap(), 1);
    assert!(
        !w.store().reserve_box_slot(&queued, 1).await.unwrap(),
        "no second slot"
    );
    // Given back (the fresh box could not be made): the queue gets it.
    w.store().detach_box(&a, true).await.unwrap();
    assert_eq!(w.store().drain_queue(1).await.unwrap().len(), 1);
    assert_eq!(w.store().live_box_count().await.unwrap(), 1);
}

#[tokio::test]
async fn an_agent_silent_past_the_stall_budget_is_stopped_and_a_talking_one_is_not() {
    let w = World::new(2).await;
    let silent = w.task("silent").await;
    let talking = w.task("talking").await;
    for id in [&silent, &talking] {
        w.hand_off(id).await;
    }
    w.worker.drain().await.unwrap();
    for id in [&silent, &talking] {
        w.to(id, AgentStatus::Speccing, Actor::System).await;
    }
    let stall_ms = w.store().settings().await.unwrap().timeouts.stall_s as i64 * 1000;
    // Just inside the budget nothing happens; the talking agent writes a line then.
    w.clock.advance_ms(stall_ms - 1000);
    w.store()
        .append_logs(&talking, vec!["still working".into()])
        .await
        .unwrap();
    let sum = w.orch.watchdog_pass("r1").await.unwrap();
    assert_eq!(sum.stalled, 0);
    w.clock.advance_ms(2000);
    let sum = w.orch.watchdog_pass("r1").await.unwrap();
    assert_eq!(sum.stalled, 1, "{sum:?}");
    let t = w.store().get_task(&silent).await.unwrap();
    assert_eq!(t.agent_status, AgentStatus::Failed);
    assert_eq!(
        t.last_error.as_deref(),
        Some("agent stalled: no model request and no log line for 900 s")
    );
    assert_eq!(w.status(&talking).await, AgentStatus::Speccing);
}
