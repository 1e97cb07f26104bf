//! One connection carries many concurrent calls, answered out of order, each matched to its
//! own request.

mod common;

use std::time::Duration;

use common::{Delayed, Todo, serve_unix, within};
use rand::{Rng, SeedableRng};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_times_a_thousand_calls_on_one_connection() {
    let (running, _dir, _events) = serve_unix().await;
    let client = common::connect(running.endpoint()).await.expect("connect");
    let mut tasks = Vec::new();
    for task in 0..64u64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(task);
            for call in 0..1000u64 {
                let value = task * 1_000_000 + call;
                // Random small delays make replies overtake each other.
                let delay_us = if rng.random_ratio(1, 10) { rng.random_range(0..500) } else { 0 };
                let reply: u64 = client.call("Task.Delay", &Delayed { value, delay_us }).await.expect("call");
                assert_eq!(reply, value, "reply for task {task} call {call} belongs to another request");
            }
        }));
    }
    within("64 × 1000 calls", async {
        for task in tasks {
            task.await.expect("task");
        }
    })
    .await;
    let todo: Todo = client.call("Task.Get", "new_id").await.expect("still usable");
    assert_eq!(todo.id, "new_id");
    running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn replies_come_back_out_of_order() {
    let (running, _dir, _events) = serve_unix().await;
    let client = common::connect(running.endpoint()).await.expect("connect");
    let slow = client.call::<_, u64>("Task.Delay", &Delayed { value: 1, delay_us: 200_000 });
    let fast = client.call::<_, u64>("Task.Delay", &Delayed { value: 2, delay_us: 0 });
    tokio::pin!(slow);
    let first = within("first reply", async {
        tokio::select! {
            biased;
            fast = fast => ("fast", fast.expect("fast")),
            slow = &mut slow => ("slow", slow.expect("slow")),
        }
    })
    .await;
    assert_eq!(first, ("fast", 2), "the fast call was not held back behind the slow one");
    assert_eq!(within("slow reply", slow).await.expect("slow"), 1);
    running.shutdown(Duration::from_secs(1)).await;
}
