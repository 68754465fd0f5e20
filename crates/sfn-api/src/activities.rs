//! Activities: `CreateActivity`, `DescribeActivity`, `ListActivities`,
//! `DeleteActivity` (records of kind `sfn-activity` in the store), and
//! `GetActivityTask`, through which a worker takes the tasks that
//! executions of this server schedule on an activity.
//!
//! An execution's Task state whose `Resource` is an activity ARN of this
//! server reaches the [`Queue`]'s task handler: the task (its token and
//! input) waits in the queue, and the execution waits for the token's
//! answer (`SendTaskSuccess`, `SendTaskFailure`, `SendTaskHeartbeat`), as
//! a callback does. The queue lives in the process that runs the
//! execution; a resumed execution queues its waiting task again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use piflow_engine::{Failure, TaskHandler, TaskRegistry, TaskRequest};
use piflow_store::Resource;

use crate::api::{ApiError, Ctx, fields};
use crate::arn::{Identity, check_name};
use crate::machines::{epoch, put, record};
use crate::paging;

/// The store kind of an activity's record.
pub const KIND: &str = "sfn-activity";

/// How long `GetActivityTask` waits for a task, as Step Functions does.
pub const DEFAULT_POLL: Duration = Duration::from_secs(60);

/// An activity's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Activity {
    created: DateTime<Utc>,
    #[serde(default)]
    tags: Vec<Value>,
    /// Deleted: the name may be created again.
    #[serde(default)]
    deleted: bool,
}

/// One scheduled activity task.
#[derive(Debug, Clone)]
struct Pending {
    token: String,
    input: Value,
}

/// The activity tasks waiting for a worker, by activity ARN.
#[derive(Debug)]
pub struct Queue {
    pending: Mutex<HashMap<String, VecDeque<Pending>>>,
    arrived: tokio::sync::Notify,
    poll: Duration,
    /// The server stops: polls answer at once.
    closed: std::sync::atomic::AtomicBool,
}

impl Queue {
    /// A queue whose `GetActivityTask` waits up to `poll` for a task.
    pub fn new(poll: Duration) -> Arc<Queue> {
        Arc::new(Queue {
            pending: Mutex::new(HashMap::new()),
            arrived: tokio::sync::Notify::new(),
            poll,
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The server stops: every waiting `GetActivityTask` answers with no
    /// task now, and later ones at once.
    pub fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.arrived.notify_waiters();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Route the activity ARNs of `identity` to this queue.
    pub fn register(self: &Arc<Self>, tasks: &mut TaskRegistry, identity: &Identity) {
        tasks.register(identity.activity_arn(""), Arc::new(Handler(self.clone())));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Pending>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, activity: &str, task: Pending) {
        let mut pending = self.lock();
        let queue = pending.entry(activity.to_string()).or_default();
        if !queue.iter().any(|p| p.token == task.token) {
            queue.push_back(task);
        }
        drop(pending);
        self.arrived.notify_waiters();
    }

    fn pop(&self, activity: &str) -> Option<Pending> {
        self.lock().get_mut(activity).and_then(VecDeque::pop_front)
    }
}

/// The task handler of the activity ARNs: queue the task, hand its token
/// out through `GetActivityTask`.
struct Handler(Arc<Queue>);

impl TaskHandler for Handler {
    fn invoke(&self, request: TaskRequest) -> BoxFuture<'static, Result<Value, Failure>> {
        let queued = match request.task_token {
            Some(token) => {
                self.0.push(
                    &request.resource,
                    Pending {
                        token,
                        input: request.input,
                    },
                );
                Ok(Value::Null)
            }
            None => Err(Failure::new(
                "States.Runtime",
                "an activity task without a task token",
            )),
        };
        Box::pin(async move { queued })
    }
}

fn not_found(arn: &str) -> ApiError {
    ApiError::new(
        "ActivityDoesNotExist",
        format!("Activity Does Not Exist: '{arn}'"),
    )
}

fn parse(r: Resource) -> Result<Activity, ApiError> {
    record(r, "activity")
}

/// The activity an ARN names, its record and the record's revision
/// (`None`: no live activity of that name).
async fn load(
    cx: &Ctx<'_>,
    field: &str,
    arn: &str,
) -> Result<(String, Option<(Activity, u64)>), ApiError> {
    let name = cx.b.identity.parse_activity(field, arn)?;
    let found = match cx.b.store().resource(KIND, &name).await? {
        Some(r) => {
            let revision = r.revision;
            Some((parse(r)?, revision))
        }
        None => None,
    };
    Ok((name, found))
}

fn described(cx: &Ctx<'_>, name: &str, a: &Activity) -> Value {
    json!({
        "activityArn": cx.b.identity.activity_arn(name),
        "name": name,
        "creationDate": epoch(a.created),
    })
}

/// `CreateActivity`: idempotent by name, as in Step Functions (the same
/// name answers with the activity it names, whatever its tags).
pub(crate) async fn create(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let name = fields::string(body, "name", true, 80)?.unwrap_or_default();
    check_name("activity", name)?;
    let tags = fields::list(body, "tags", 0, 50)?
        .cloned()
        .unwrap_or_default();
    fields::object(body, "encryptionConfiguration")?;
    let arn = cx.b.identity.activity_arn(name);
    let revision = match cx.b.store().resource(KIND, name).await? {
        Some(r) => {
            let revision = r.revision;
            let a = parse(r)?;
            if !a.deleted {
                return Ok(json!({"activityArn": arn, "creationDate": epoch(a.created)}));
            }
            revision
        }
        None => 0,
    };
    let a = Activity {
        created: cx.now,
        tags,
        deleted: false,
    };
    put(cx, KIND, "activity", name, &a, revision).await?;
    cx.audit(None, "CreateActivity", &arn, Value::Null, None)
        .await?;
    Ok(json!({"activityArn": arn, "creationDate": epoch(a.created)}))
}

/// `DescribeActivity`.
pub(crate) async fn describe(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = fields::string(body, "activityArn", true, 256)?.unwrap_or_default();
    match load(cx, "activityArn", arn).await? {
        (name, Some((a, _))) if !a.deleted => Ok(described(cx, &name, &a)),
        _ => Err(not_found(arn)),
    }
}

/// `ListActivities`: by name, paged.
pub(crate) async fn list(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let mut rows = Vec::new();
    for r in cx.b.store().resources(KIND).await? {
        let name = r.name.clone();
        match parse(r) {
            Ok(a) if !a.deleted => rows.push((name, a)),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(code = e.code(), error = %e, "an activity record cannot be read; listing the others")
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paging::page("ListActivities", body, rows)?;
    let activities = page
        .iter()
        .map(|(name, a)| described(cx, name, a))
        .collect();
    Ok(paging::answer("activities", activities, next))
}

/// `DeleteActivity`: the record is marked deleted; deleting one that does
/// not exist succeeds. Tasks already scheduled on it stay queued.
pub(crate) async fn delete(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = fields::string(body, "activityArn", true, 256)?.unwrap_or_default();
    if let (name, Some((mut a, revision))) = load(cx, "activityArn", arn).await?
        && !a.deleted
    {
        a.deleted = true;
        put(cx, KIND, "activity", &name, &a, revision).await?;
        cx.audit(None, "DeleteActivity", arn, Value::Null, None)
            .await?;
    }
    Ok(json!({}))
}

/// `GetActivityTask`: the oldest task scheduled on the activity whose
/// execution still waits for it, `{taskToken, input}`; waits for one up to
/// the queue's poll time (60 s, as Step Functions), then answers with no
/// task (`{}`).
pub(crate) async fn get_task(cx: &Ctx<'_>, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = fields::string(body, "activityArn", true, 256)?.unwrap_or_default();
    fields::string(body, "workerName", false, 80)?;
    let (name, found) = load(cx, "activityArn", arn).await?;
    if found.is_none_or(|(a, _)| a.deleted) {
        return Err(not_found(arn));
    }
    let arn = cx.b.identity.activity_arn(&name);
    let queue = &cx.b.activities;
    let tokens = &cx.b.service.runner().tokens;
    let deadline = tokio::time::Instant::now() + queue.poll;
    loop {
        // Registered before the queue is read: a task queued in between
        // wakes this poll.
        let mut arrived = std::pin::pin!(queue.arrived.notified());
        arrived.as_mut().enable();
        while let Some(task) = queue.pop(&arn) {
            // A task whose attempt ended (timed out, its execution stopped)
            // is dropped.
            if tokens.is_open(&task.token) {
                return Ok(json!({"taskToken": task.token, "input": task.input.to_string()}));
            }
        }
        if queue.is_closed() || tokio::time::timeout_at(deadline, arrived).await.is_err() {
            return Ok(json!({}));
        }
    }
}
