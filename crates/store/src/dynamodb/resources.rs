//! Resources: one item each, `PK` = `RES#kind`, `SK` = `N#name`, its
//! revision in `rev` (the condition of every write), its body inline (a
//! resource is one item: at most [`INLINE_MAX`] bytes).

use super::*;

fn res_pk(kind: &str) -> String {
    format!("RES#{kind}")
}

fn res_sk(name: &str) -> String {
    format!("N#{name}")
}

fn rev_is(read: u64) -> Cond {
    Cond::new("#rev = :rev")
        .name("#rev", "rev")
        .value(":rev", n(read))
}

impl DynamoStore {
    pub(super) async fn do_put_resource(&self, resource: Resource) -> Result<Resource, StoreError> {
        let shown = format!("{} {}", resource.kind, resource.name);
        let read = resource.revision;
        let mut new = resource;
        new.revision += 1;
        let body = encode(&new)?;
        if body.len() > INLINE_MAX {
            return Err(StoreError::TooLarge(format!(
                "{shown} is {} bytes; a resource is one DynamoDB item of at most {INLINE_MAX} bytes",
                body.len()
            )));
        }
        let items = record_items(
            &res_pk(&new.kind),
            &res_sk(&new.name),
            &body,
            HashMap::from([("rev".to_string(), n(new.revision))]),
        );
        let cond = if read == 0 { is_new() } else { rev_is(read) };
        let what = format!("writing {shown}");
        match self.write(&what, record_puts(items, Some(cond))).await {
            Ok(()) => Ok(new),
            Err(WriteError::Store(e)) => Err(e),
            Err(refused) => {
                let old = match refused.old(0) {
                    Some(o) => Some(o.clone()),
                    None => {
                        self.get(&res_pk(&new.kind), &res_sk(&new.name), &what)
                            .await?
                    }
                };
                Err(match (old.and_then(|o| u64_attr(&o, "rev")), read) {
                    (Some(_), 0) => StoreError::Conflict(format!("{shown} exists already")),
                    (None, _) => StoreError::NotFound(shown),
                    (Some(stored), _) => StoreError::Conflict(format!(
                        "{shown} was written by someone else (revision {stored} is stored, {read} was read)"
                    )),
                })
            }
        }
    }

    pub(super) async fn do_resource(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Option<Resource>, StoreError> {
        self.read_record(
            &res_pk(kind),
            &res_sk(name),
            &format!("reading {kind} {name}"),
        )
        .await
    }

    pub(super) async fn do_resources(&self, kind: &str) -> Result<Vec<Resource>, StoreError> {
        self.read_records(&res_pk(kind), "N#", &format!("listing {kind}"))
            .await
    }
}
