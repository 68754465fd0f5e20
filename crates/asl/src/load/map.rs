//! The Map state: its item processor, items, ItemReader, ItemBatcher,
//! ResultWriter, tolerated failures and Label.

use serde_json::Value;

use crate::diagnostics::{Code, child_pointer};
use crate::model::*;
use crate::source::{Node, NodeKind, Span};

use super::exprs::NumberCheck;
use super::{Loader, MAX_LABEL};

impl Loader {
    pub(super) fn map(&mut self, node: &Node, ptr: &str, lang: QueryLanguage) -> Option<Map> {
        let mut io = self.result_handling(node, ptr, lang);
        // A Map's Parameters is the legacy name of ItemSelector (read below).
        io.parameters = None;
        // The processor.
        let (proc_field, legacy) = match (node.get("ItemProcessor"), node.get("Iterator")) {
            (Some(_), Some(it)) => {
                self.error(
                    Code::ExclusiveFields,
                    &child_pointer(ptr, "Iterator"),
                    it.span,
                    "ItemProcessor and the legacy Iterator cannot be used together",
                );
                ("ItemProcessor", false)
            }
            (Some(_), None) => ("ItemProcessor", false),
            (None, Some(_)) => ("Iterator", true),
            (None, None) => {
                self.error(
                    Code::MissingField,
                    ptr,
                    node.span,
                    "a Map state needs ItemProcessor (or the legacy Iterator)",
                );
                return None;
            }
        };
        let pnode = node.get(proc_field)?;
        let pptr = child_pointer(ptr, proc_field);
        let Some(pfields) = pnode.as_object() else {
            self.wrong_type(
                &pptr,
                pnode,
                proc_field,
                "an object with StartAt and States",
            );
            return None;
        };
        self.unknown_keys(
            pfields,
            &pptr,
            &["StartAt", "States", "Comment", "ProcessorConfig"],
            &format!("in {proc_field}"),
        );
        let mut mode = ProcessorMode::Inline;
        let mut execution_type = None;
        if let Some(cfg) = pnode.get("ProcessorConfig") {
            let cptr = child_pointer(&pptr, "ProcessorConfig");
            match cfg.as_object() {
                None => self.wrong_type(&cptr, cfg, "ProcessorConfig", "an object"),
                Some(cf) => {
                    self.unknown_keys(cf, &cptr, &["Mode", "ExecutionType"], "in ProcessorConfig");
                    if let Some(m) = cfg.get("Mode") {
                        match m.as_str() {
                            Some("INLINE") => mode = ProcessorMode::Inline,
                            Some("DISTRIBUTED") => mode = ProcessorMode::Distributed,
                            _ => self.error(
                                Code::InvalidValue,
                                &child_pointer(&cptr, "Mode"),
                                m.span,
                                "Mode must be \"INLINE\" or \"DISTRIBUTED\"",
                            ),
                        }
                    }
                    if let Some(e) = cfg.get("ExecutionType") {
                        match e.as_str() {
                            Some("STANDARD") => execution_type = Some(MachineType::Standard),
                            Some("EXPRESS") => execution_type = Some(MachineType::Express),
                            _ => self.error(
                                Code::InvalidValue,
                                &child_pointer(&cptr, "ExecutionType"),
                                e.span,
                                "ExecutionType must be \"STANDARD\" or \"EXPRESS\"",
                            ),
                        }
                    }
                }
            }
        }
        let processor = self.scope(pnode, &pptr, lang, proc_field);

        self.exclusive(node, ptr, "Items", "ItemsPath");
        let items_path = node.get("ItemsPath").and_then(|n| {
            match self.json_path_field(n, &child_pointer(ptr, "ItemsPath"), "ItemsPath")? {
                Nullable::Value(p) => Some(p),
                Nullable::Null => {
                    self.wrong_type(
                        &child_pointer(ptr, "ItemsPath"),
                        n,
                        "ItemsPath",
                        "a path string",
                    );
                    None
                }
            }
        });
        let items = node.get("Items").map(|n| {
            let iptr = child_pointer(ptr, "Items");
            let t = self.jsonata_template(n, &iptr);
            if !matches!(n.kind, NodeKind::Array(_) | NodeKind::String(_))
                || matches!(t, Template::Literal(Value::String(_)))
            {
                self.wrong_type(&iptr, n, "Items", "an array or a JSONata expression");
            }
            t
        });
        self.exclusive(node, ptr, "ItemSelector", "Parameters");
        let item_selector = match (node.get("ItemSelector"), node.get("Parameters")) {
            (Some(n), _) => Some(self.template(n, &child_pointer(ptr, "ItemSelector"), lang)),
            (None, Some(n)) => Some(self.payload_template(n, &child_pointer(ptr, "Parameters"))),
            _ => None,
        };
        let item_reader = node
            .get("ItemReader")
            .and_then(|n| self.item_reader(n, &child_pointer(ptr, "ItemReader"), lang));
        let item_batcher = node
            .get("ItemBatcher")
            .and_then(|n| self.item_batcher(n, &child_pointer(ptr, "ItemBatcher"), lang));
        let result_writer = node
            .get("ResultWriter")
            .and_then(|n| self.result_writer(n, &child_pointer(ptr, "ResultWriter"), lang));
        let max_concurrency = self.number_source(
            node,
            ptr,
            "MaxConcurrency",
            Some("MaxConcurrencyPath"),
            lang,
            NumberCheck::Int {
                min: 0,
                max: 99_999_999,
            },
        );
        let tolerated_failure_count = self.number_source(
            node,
            ptr,
            "ToleratedFailureCount",
            Some("ToleratedFailureCountPath"),
            lang,
            NumberCheck::Int {
                min: 0,
                max: 99_999_999,
            },
        );
        let tolerated_failure_percentage = self.number_source(
            node,
            ptr,
            "ToleratedFailurePercentage",
            Some("ToleratedFailurePercentagePath"),
            lang,
            NumberCheck::Range {
                min: 0.0,
                max: 100.0,
            },
        );
        let label = node.get("Label").and_then(|n| {
            let lptr = child_pointer(ptr, "Label");
            match n.as_str() {
                Some(s) => {
                    self.label(s, &lptr, n.span);
                    Some(s.to_string())
                }
                None => {
                    self.wrong_type(&lptr, n, "Label", "a string");
                    None
                }
            }
        });
        Some(Map {
            processor: processor?,
            mode,
            execution_type,
            legacy_iterator: legacy,
            items_path,
            items,
            item_selector,
            item_reader,
            item_batcher,
            result_writer,
            max_concurrency,
            tolerated_failure_count,
            tolerated_failure_percentage,
            label,
            io,
        })
    }

    fn label(&mut self, s: &str, ptr: &str, span: Span) {
        if s.is_empty() {
            self.error(Code::InvalidName, ptr, span, "Label cannot be empty");
            return;
        }
        let len = s.chars().count();
        if len > MAX_LABEL {
            self.error(
                Code::InvalidName,
                ptr,
                span,
                format!("Label is {len} characters long; the limit is {MAX_LABEL}"),
            );
        }
        if let Some(c) = s.chars().find(|c| is_forbidden_label_char(*c)) {
            self.error(
                Code::InvalidName,
                ptr,
                span,
                format!("Label contains the invalid character {c:?}: no white space, brackets, wildcards, special characters (\" # % \\ ^ | ~ ` $ & , ; : /) or control characters"),
            );
        }
    }

    fn item_reader(&mut self, n: &Node, ptr: &str, lang: QueryLanguage) -> Option<ItemReader> {
        let Some(fields) = n.as_object() else {
            self.wrong_type(ptr, n, "ItemReader", "an object");
            return None;
        };
        self.payload_keys(
            fields,
            ptr,
            &["Resource", "ReaderConfig"],
            lang,
            "in ItemReader",
        );
        let resource = self.opt_string(n, ptr, "Resource");
        if resource.is_none() && n.get("Resource").is_none() {
            self.error(Code::MissingField, ptr, n.span, "ItemReader needs Resource");
        }
        let parameters = n
            .get("Parameters")
            .map(|p| self.payload_template(p, &child_pointer(ptr, "Parameters")));
        let arguments = n
            .get("Arguments")
            .map(|p| self.jsonata_template(p, &child_pointer(ptr, "Arguments")));
        let mut max_items = None;
        let reader_config = n.get("ReaderConfig").map(|rc| {
            let rptr = child_pointer(ptr, "ReaderConfig");
            if let Some(rf) = rc.as_object() {
                const RC: &[&str] = &[
                    "InputType",
                    "CSVHeaderLocation",
                    "CSVHeaders",
                    "CSVDelimiter",
                    "MaxItems",
                    "MaxItemsPath",
                    "ManifestType",
                    "Transformation",
                ];
                self.unknown_keys(rf, &rptr, RC, "in ReaderConfig");
                max_items = self.number_source(
                    rc,
                    &rptr,
                    "MaxItems",
                    Some("MaxItemsPath"),
                    lang,
                    NumberCheck::Int {
                        min: 0,
                        max: 100_000_000,
                    },
                );
            } else {
                self.wrong_type(&rptr, rc, "ReaderConfig", "an object");
            }
            rc.to_value()
        });
        Some(ItemReader {
            resource: resource?,
            parameters,
            arguments,
            reader_config,
            max_items,
        })
    }

    fn item_batcher(&mut self, n: &Node, ptr: &str, lang: QueryLanguage) -> Option<ItemBatcher> {
        let Some(fields) = n.as_object() else {
            self.wrong_type(ptr, n, "ItemBatcher", "an object");
            return None;
        };
        const IB: &[&str] = &[
            "MaxItemsPerBatch",
            "MaxItemsPerBatchPath",
            "MaxInputBytesPerBatch",
            "MaxInputBytesPerBatchPath",
            "BatchInput",
        ];
        self.unknown_keys(fields, ptr, IB, "in ItemBatcher");
        let max_items_per_batch = self.number_source(
            n,
            ptr,
            "MaxItemsPerBatch",
            Some("MaxItemsPerBatchPath"),
            lang,
            NumberCheck::Int {
                min: 1,
                max: 100_000_000,
            },
        );
        let max_input_bytes_per_batch = self.number_source(
            n,
            ptr,
            "MaxInputBytesPerBatch",
            Some("MaxInputBytesPerBatchPath"),
            lang,
            NumberCheck::Int {
                min: 1,
                max: 262_144,
            },
        );
        let batch_input = n
            .get("BatchInput")
            .map(|b| self.template(b, &child_pointer(ptr, "BatchInput"), lang));
        Some(ItemBatcher {
            max_items_per_batch,
            max_input_bytes_per_batch,
            batch_input,
        })
    }

    fn result_writer(&mut self, n: &Node, ptr: &str, lang: QueryLanguage) -> Option<ResultWriter> {
        let Some(fields) = n.as_object() else {
            self.wrong_type(ptr, n, "ResultWriter", "an object");
            return None;
        };
        self.payload_keys(
            fields,
            ptr,
            &["Resource", "WriterConfig"],
            lang,
            "in ResultWriter",
        );
        Some(ResultWriter {
            resource: self.opt_string(n, ptr, "Resource"),
            parameters: n
                .get("Parameters")
                .map(|p| self.payload_template(p, &child_pointer(ptr, "Parameters"))),
            arguments: n
                .get("Arguments")
                .map(|p| self.jsonata_template(p, &child_pointer(ptr, "Arguments"))),
            writer_config: n.get("WriterConfig").map(Node::to_value),
        })
    }
}

fn is_forbidden_label_char(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || ('\u{7f}'..='\u{9f}').contains(&c)
        || matches!(
            c,
            '<' | '>'
                | '{'
                | '}'
                | '['
                | ']'
                | '?'
                | '*'
                | '"'
                | '#'
                | '%'
                | '\\'
                | '^'
                | '|'
                | '~'
                | '`'
                | '$'
                | '&'
                | ','
                | ';'
                | ':'
                | '/'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for c in ['*', ' ', ']', '\\', '}', '\u{8}', '\u{7f}', '\u{85}'] {
            assert!(is_forbidden_label_char(c), "{c:?}");
        }
        assert!(!is_forbidden_label_char('a'));
        assert!(!is_forbidden_label_char('-'));
    }
}
