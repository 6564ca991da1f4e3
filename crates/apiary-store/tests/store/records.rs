//! Users, sessions, tokens, projects, settings and secrets.

use apiary_core::{ProjectAccess, Role, Settings};
use apiary_store::{hash_token, NewProject, NewUser, ProjectPatch, StoreError};
use apiary_testkit::{test_store, test_store_manual};

#[tokio::test]
async fn bootstrap_creates_the_agent_and_one_admin_and_a_second_run_changes_nothing() {
    let db = test_store().await;
    let store = &db.store;
    let first = store.bootstrap(None, None).await.unwrap();
    let (admin, password) = first.expect("an admin was created");
    assert_eq!(admin.email, "admin@localhost");
    let password = password.expect("generated password");
    assert!(password.len() >= 16);
    assert!(store
        .verify_password("admin@localhost", &password)
        .await
        .unwrap()
        .is_some());
    let users = store.list_users().await.unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(store.agent_user().await.unwrap().role, Role::Agent);
    assert!(store.bootstrap(None, None).await.unwrap().is_none());
    assert_eq!(store.list_users().await.unwrap(), users);
}

#[tokio::test]
async fn passwords_are_hashed_and_checked() {
    let db = test_store().await;
    let store = &db.store;
    let u = store
        .create_user(NewUser {
            email: "A@Example.test".into(),
            name: "A".into(),
            role: Role::Member,
            password: Some("long enough".into()),
        })
        .await
        .unwrap();
    assert_eq!(u.email, "a@example.test");
    assert!(store
        .verify_password("a@example.test", "long enough")
        .await
        .unwrap()
        .is_some());
    assert!(store
        .verify_password("a@example.test", "wrong one!")
        .await
        .unwrap()
        .is_none());
    assert!(store
        .verify_password("nobody@example.test", "long enough")
        .await
        .unwrap()
        .is_none());
    let dup = store
        .create_user(NewUser {
            email: "a@example.test".into(),
            name: "B".into(),
            role: Role::Member,
            password: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict { field: "email", .. }));
    let short = store
        .create_user(NewUser {
            email: "c@example.test".into(),
            name: "C".into(),
            role: Role::Member,
            password: Some("short".into()),
        })
        .await
        .unwrap_err();
    assert!(matches!(
        short,
        StoreError::Invalid {
            field: "password",
            ..
        }
    ));
}

#[tokio::test]
async fn sessions_expire_and_tokens_are_stored_as_hashes_and_revocable() {
    let (db, clock) = test_store_manual().await;
    let store = &db.store;
    let u = store
        .create_user(NewUser {
            email: "a@example.test".into(),
            name: "A".into(),
            role: Role::Member,
            password: None,
        })
        .await
        .unwrap();
    let (token, csrf) = store.create_session(&u.id, 1_000).await.unwrap();
    let s = store.session(&token).await.unwrap().unwrap();
    assert_eq!(
        (s.user.id.as_str(), s.csrf_token.as_str()),
        (u.id.as_str(), csrf.as_str())
    );
    clock.advance_ms(1_001);
    assert!(store.session(&token).await.unwrap().is_none());

    let (id, pat) = store.create_api_token(&u.id, "ci").await.unwrap();
    assert!(pat.starts_with("apiary_pat_"));
    assert_eq!(hash_token(&pat).len(), 64);
    assert_eq!(store.api_token_user(&pat).await.unwrap().unwrap().id, u.id);
    assert!(
        store
            .api_token_user(&hash_token(&pat))
            .await
            .unwrap()
            .is_none(),
        "the stored hash is not a credential"
    );
    store.revoke_api_token(&id).await.unwrap();
    assert!(store.api_token_user(&pat).await.unwrap().is_none());
}

#[tokio::test]
async fn projects_keep_agent_settings_and_refuse_bad_ones_naming_the_field() {
    let db = test_store().await;
    let store = &db.store;
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
    let p2 = store
        .update_project(
            &p.id,
            ProjectPatch {
                enabled: Some(true),
                repo_url: Some("/srv/git/p.git".into()),
                preset: Some("codex".into()),
                prompt_spec: Some("Write a spec for {{ task.title }}".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(p2.agent.enabled);
    assert_eq!(p2.agent.repo_url, "/srv/git/p.git");
    assert_eq!(p2.agent.preset, "codex");
    assert_eq!(p2.agent.base_branch, "main");
    assert_eq!(p2.agent.prompts.spec, "Write a spec for {{ task.title }}");
    for (patch, field) in [
        (
            ProjectPatch {
                preset: Some("nope".into()),
                ..Default::default()
            },
            "preset",
        ),
        (
            ProjectPatch {
                forge: Some("gitlab".into()),
                ..Default::default()
            },
            "forge",
        ),
        (
            ProjectPatch {
                base_branch: Some("a..b".into()),
                ..Default::default()
            },
            "base_branch",
        ),
        (
            ProjectPatch {
                name: Some("  ".into()),
                ..Default::default()
            },
            "name",
        ),
    ] {
        match store.update_project(&p.id, patch).await {
            Err(StoreError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected Invalid {field}, got {other:?}"),
        }
    }
    assert_eq!(
        store.get_project(&p.id).await.unwrap(),
        p2,
        "refused patches changed nothing"
    );

    let member = store
        .create_user(NewUser {
            email: "m@example.test".into(),
            name: "M".into(),
            role: Role::Member,
            password: None,
        })
        .await
        .unwrap();
    assert_eq!(store.project_access(&p.id, &member).await.unwrap(), None);
    assert!(store.list_projects_for(&member).await.unwrap().is_empty());
    store
        .set_project_member(&p.id, &member.id, ProjectAccess::Read)
        .await
        .unwrap();
    assert_eq!(
        store.project_access(&p.id, &member).await.unwrap(),
        Some(ProjectAccess::Read)
    );
    assert_eq!(store.list_projects_for(&member).await.unwrap().len(), 1);
    let agent = store.agent_user().await.unwrap();
    assert_eq!(store.project_access(&p.id, &agent).await.unwrap(), None);
}

#[tokio::test]
async fn settings_round_trip_with_defaults() {
    let db = test_store().await;
    let store = &db.store;
    let defaults = store.settings().await.unwrap();
    assert_eq!(defaults, Settings::default());
    assert!(
        !defaults.agent_orchestration_enabled,
        "the kill switch starts off"
    );
    let mut s = defaults.clone();
    s.max_concurrent_boxes = 2;
    s.timeouts.idle_s = 99;
    store.save_settings(&s).await.unwrap();
    assert_eq!(store.settings().await.unwrap(), s);
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_deleted_for_real() {
    let db = test_store().await;
    let store = &db.store;
    let plaintext = "bot-token-1234567890";
    let id = store.put_secret(plaintext).await.unwrap();
    let ct = store.secret_ciphertext(&id).await.unwrap().unwrap();
    assert!(!ct.contains(plaintext));
    assert_eq!(
        store.get_secret(&id).await.unwrap().as_deref(),
        Some(plaintext)
    );
    store.delete_secret(&id).await.unwrap();
    assert_eq!(store.get_secret(&id).await.unwrap(), None);
    assert_eq!(store.secret_ciphertext(&id).await.unwrap(), None);
}

#[tokio::test]
async fn agent_logs_are_numbered_per_task_and_paged() {
    let db = test_store().await;
    let store = &db.store;
    let (admin, task) = crate::transition::setup(store).await;
    let _ = admin;
    let batch: Vec<String> = (1..=5).map(|i| format!("line {i}")).collect();
    assert_eq!(
        store
            .append_logs(&task, batch.clone())
            .await
            .unwrap()
            .last_seq,
        5
    );
    assert_eq!(
        store
            .append_logs(&task, batch[..2].to_vec())
            .await
            .unwrap()
            .last_seq,
        7
    );
    let page = store.list_logs(&task, 3, 3).await.unwrap();
    assert_eq!(
        page.iter().map(|l| l.seq).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    assert_eq!(page[0].line, "line 4");
}

#[tokio::test]
async fn concurrent_log_batches_share_a_commit_and_each_lands_whole_and_in_order() {
    let db = test_store().await;
    let store = &db.store;
    let (admin, project, first) = apiary_testkit::seed_task(store).await;
    let mut tasks = vec![first.id];
    for i in 1..4 {
        let (t, _) = store
            .create_task(
                &project.id,
                apiary_store::NewTask {
                    title: format!("T{i}"),
                    description: String::new(),
                    status: None,
                    assignee_id: None,
                },
                &admin,
            )
            .await
            .unwrap();
        tasks.push(t.id);
    }
    // 50 batches of 3 lines per task, all posted at once, plus one for a task that is gone.
    let mut calls = Vec::new();
    for (t, task) in tasks.iter().enumerate() {
        for b in 0..50 {
            let lines: Vec<String> = (0..3).map(|k| format!("{t}:{b}:{k}")).collect();
            calls.push((task.clone(), lines));
        }
    }
    calls.insert(7, ("no-such-task".into(), vec!["x".into()]));
    // A transaction that holds the tasks' rows (and, on SQLite, the write lock) keeps the
    // writer from finishing its first group while every batch is posted: the rest queue up
    // and must go out together in the next one.
    let mut blocker = store.begin().await.unwrap();
    sqlx::query("UPDATE tasks SET updated_at = updated_at WHERE project_id = $1")
        .bind(&project.id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let posting = {
        let store = store.clone();
        let calls = calls.clone();
        tokio::spawn(async move {
            futures_util::future::join_all(
                calls
                    .iter()
                    .map(|(task, lines)| store.append_logs(task, lines.clone())),
            )
            .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    blocker.commit().await.unwrap();
    let results = posting.await.unwrap();
    let mut event_ids = std::collections::HashSet::new();
    for ((task, lines), result) in calls.iter().zip(results) {
        if task == "no-such-task" {
            assert!(matches!(result, Err(StoreError::NotFound("task"))));
            continue;
        }
        let done = result.expect("stored");
        event_ids.insert(done.event_id);
        assert_eq!(done.project_id, project.id);
        // The batch's lines sit together, in order, ending at the seq it was told.
        let stored = store
            .list_logs(task, done.last_seq - 3, 3)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect::<Vec<_>>();
        assert_eq!(&stored, lines);
    }
    for task in &tasks {
        let lines = store.list_logs(task, 0, 1000).await.unwrap();
        assert_eq!(lines.len(), 150);
        assert!(lines.iter().enumerate().all(|(i, l)| l.seq == i as i64 + 1));
        // Batches of one task keep the order they were posted in.
        let firsts: Vec<usize> = lines
            .iter()
            .step_by(3)
            .map(|l| l.line.split(':').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(firsts, (0..50).collect::<Vec<_>>());
        // One `log` event per task for the group, at its last line.
        let events: Vec<_> = store
            .events_after(0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "log" && &e.task_id == task)
            .collect();
        // The group the writer took before it was held up, and one for all the rest.
        assert!(
            (1..=2).contains(&events.len()),
            "50 batches in at most two group commits: {} log events",
            events.len()
        );
        assert_eq!(events.last().unwrap().message.as_deref(), Some("150"));
    }
    assert!(event_ids.len() <= 8, "{} log events", event_ids.len());
}
