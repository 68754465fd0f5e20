//! The table: its keys and indexes, checked when the store opens and
//! created by `piflow store init`.

use super::*;

impl DynamoStore {
    pub(super) fn missing_table(&self) -> StoreError {
        StoreError::Unavailable {
            path: self.spec(),
            reason: format!(
                "table {} does not exist (region {}): run `piflow store init --store dynamodb://{}` or deploy integration/store-table.yaml",
                self.table, self.region, self.table
            ),
        }
    }

    /// DescribeTable: the table exists, with piflow's keys and indexes.
    pub async fn check_table(&self) -> Result<(), StoreError> {
        let desc = self.describe().await?.ok_or_else(|| self.missing_table())?;
        self.check_schema(&desc)
    }

    pub(super) async fn describe(&self) -> Result<Option<TableDescription>, StoreError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(out) => Ok(out.table),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(self.sdk_error("DescribeTable", "checking the table", e)),
        }
    }

    pub(super) fn check_schema(&self, desc: &TableDescription) -> Result<(), StoreError> {
        let keys: Vec<(String, String)> = desc
            .key_schema()
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_string(),
                    k.key_type().as_str().to_string(),
                )
            })
            .collect();
        let want = vec![
            ("PK".to_string(), "HASH".to_string()),
            ("SK".to_string(), "RANGE".to_string()),
        ];
        if keys != want {
            let shown: Vec<String> = keys.iter().map(|(a, t)| format!("{a} ({t})")).collect();
            return Err(StoreError::Unavailable {
                path: self.spec(),
                reason: format!(
                    "table {} (region {}) has the keys [{}] but piflow needs PK (HASH, string) and SK (RANGE, string): use another table name, or create the table with `piflow store init` / integration/store-table.yaml",
                    self.table,
                    self.region,
                    shown.join(", ")
                ),
            });
        }
        let indexes: Vec<&str> = desc
            .global_secondary_indexes()
            .iter()
            .filter_map(|g| g.index_name())
            .collect();
        let missing: Vec<&str> = [INDEX_BY_START, INDEX_BY_STATUS]
            .into_iter()
            .filter(|i| !indexes.contains(i))
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::Unavailable {
                path: self.spec(),
                reason: format!(
                    "table {} (region {}) lacks the global secondary index(es) {}: add them as in integration/store-table.yaml (or create a new table with `piflow store init`)",
                    self.table,
                    self.region,
                    missing.join(", ")
                ),
            });
        }
        Ok(())
    }

    pub(super) async fn create_table(&self) -> Result<String, StoreError> {
        if let Some(desc) = self.describe().await? {
            self.check_schema(&desc)?;
            self.wait_active().await?;
            return Ok(format!(
                "DynamoDB table {} already exists in {} with piflow's keys and indexes: nothing to do",
                self.table, self.region
            ));
        }
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Io(e.to_string());
        let mut attrs = Vec::new();
        for a in ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"] {
            attrs.push(
                AttributeDefinition::builder()
                    .attribute_name(a)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build)?,
            );
        }
        let key = |hash: &str, range: &str| -> Result<Vec<KeySchemaElement>, StoreError> {
            Ok(vec![
                KeySchemaElement::builder()
                    .attribute_name(hash)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(build)?,
                KeySchemaElement::builder()
                    .attribute_name(range)
                    .key_type(KeyType::Range)
                    .build()
                    .map_err(build)?,
            ])
        };
        let mut gsis = Vec::new();
        for (name, h, r) in [
            (INDEX_BY_START, "GSI1PK", "GSI1SK"),
            (INDEX_BY_STATUS, "GSI2PK", "GSI2SK"),
        ] {
            gsis.push(
                GlobalSecondaryIndex::builder()
                    .index_name(name)
                    .set_key_schema(Some(key(h, r)?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .map_err(build)?,
            );
        }
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(attrs))
            .set_key_schema(Some(key("PK", "SK")?))
            .set_global_secondary_indexes(Some(gsis))
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Someone else is creating it at the same time: wait for theirs.
            Err(e) if e.code() == Some("ResourceInUseException") => {}
            Err(e) => return Err(self.sdk_error("CreateTable", "creating the table", e)),
        }
        self.wait_active().await?;
        if let Some(desc) = self.describe().await? {
            self.check_schema(&desc)?;
        }
        Ok(format!(
            "created DynamoDB table {} in {} (on-demand, indexes {INDEX_BY_START} and {INDEX_BY_STATUS}): use it with --store dynamodb://{}",
            self.table, self.region, self.table
        ))
    }

    /// Poll DescribeTable until the table and its indexes are ACTIVE
    /// (at most 10 minutes).
    pub(super) async fn wait_active(&self) -> Result<(), StoreError> {
        let deadline = std::time::Instant::now() + StdDuration::from_secs(600);
        loop {
            if let Some(desc) = self.describe().await? {
                let table_ok = desc.table_status() == Some(&TableStatus::Active);
                let indexes_ok = desc
                    .global_secondary_indexes()
                    .iter()
                    .all(|g| g.index_status().is_none_or(|s| *s == IndexStatus::Active));
                if table_ok && indexes_ok {
                    return Ok(());
                }
                tracing::debug!(table = %self.table, status = ?desc.table_status(), "waiting for the table to become ACTIVE");
            }
            if std::time::Instant::now() > deadline {
                return Err(StoreError::Unavailable {
                    path: self.spec(),
                    reason: format!(
                        "table {} (region {}) did not become ACTIVE within 10 minutes: look at it in the DynamoDB console, then run `piflow store init` again",
                        self.table, self.region
                    ),
                });
            }
            tokio::time::sleep(StdDuration::from_secs(1)).await;
        }
    }
}
