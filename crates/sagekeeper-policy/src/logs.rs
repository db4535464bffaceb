//! VPC flow logs: what lets CloudWatch Logs encrypt a flow log group with one of the
//! environment's keys (only the region's CloudWatch Logs, and only for that group), and the
//! delivery role, which only the flow-logs service of the account may assume and which writes
//! only into that group.

use serde_json::Value;

use crate::document::{Statement, document};
use crate::inputs::dns_suffix;

/// The Sid of the key policy statement that lets CloudWatch Logs use a key for a flow log group.
pub const KEY_STATEMENT_SID: &str = "CloudWatchLogsOfTheFlowLogGroup";

/// Where one VPC's flow logs go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowLogGroup<'a> {
    /// `aws`, `aws-cn`, ...
    pub partition: &'a str,
    /// The region of the VPC and the log group.
    pub region: &'a str,
    /// The account of the VPC, the log group, its key and the delivery role.
    pub account_id: &'a str,
    /// The log group name.
    pub name: &'a str,
}

impl FlowLogGroup<'_> {
    /// The log group's ARN, as CloudWatch Logs puts it in the encryption context.
    pub fn arn(&self) -> String {
        format!("arn:{}:logs:{}:{}:log-group:{}", self.partition, self.region, self.account_id, self.name)
    }
}

/// The key statement: the region's CloudWatch Logs may use the key only with the group's ARN as
/// encryption context, so no other group, of this account or another, can be encrypted with it,
/// and no grant. Reading the records goes through CloudWatch Logs, which decrypts for whoever
/// may read the group (nobody but the account's administrators: no role of the environment may).
pub(crate) fn key_statement(group: &FlowLogGroup) -> Value {
    Statement::allow(KEY_STATEMENT_SID)
        .service_principal(&format!("logs.{}.{}", group.region, dns_suffix(group.partition)))
        .actions(&["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*"])
        .resources(["*"])
        .condition("StringEquals", "kms:EncryptionContext:aws:logs:arn", group.arn())
        .build()
}

/// The delivery role's trust: the flow-logs service, for flow logs of this account only.
pub fn delivery_trust(group: &FlowLogGroup) -> Value {
    let flow_logs = format!("arn:{}:ec2:{}:{}:vpc-flow-log/*", group.partition, group.region, group.account_id);
    document(vec![
        Statement::allow("TrustFlowLogs")
            .service_principal("vpc-flow-logs.amazonaws.com")
            .actions(&["sts:AssumeRole"])
            .condition("StringEquals", "aws:SourceAccount", group.account_id.to_owned())
            .condition("ArnLike", "aws:SourceArn", flow_logs)
            .build(),
    ])
}

/// The delivery role's permissions: streams and events of its own group, nothing else (the
/// group exists before the flow log; the role may not create groups).
pub fn delivery_policy(group: &FlowLogGroup) -> Value {
    let arn = group.arn();
    document(vec![
        Statement::allow("WriteFlowLogs")
            .actions(&["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"])
            .resources([arn.clone(), format!("{arn}:*")])
            .build(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::checks::{actions, statement, well_formed};

    const GROUP: &str = "/sagekeeper/vpc-flow-logs/t-e-abc123";

    #[test]
    fn only_cloudwatch_logs_of_the_region_uses_the_key_and_only_for_the_group() {
        let group = FlowLogGroup { partition: "aws", region: "eu-west-1", account_id: "111111111111", name: GROUP };
        let logs = key_statement(&group);
        assert_eq!(logs["Principal"]["Service"][0], "logs.eu-west-1.amazonaws.com");
        assert_eq!(
            logs["Condition"]["StringEquals"]["kms:EncryptionContext:aws:logs:arn"],
            "arn:aws:logs:eu-west-1:111111111111:log-group:/sagekeeper/vpc-flow-logs/t-e-abc123"
        );
        assert!(!actions(&logs).iter().any(|a| a.contains("Grant")), "the logs service gets no grants");
    }

    #[test]
    fn the_delivery_role_is_for_flow_logs_of_its_account_and_writes_only_its_group() {
        let group = FlowLogGroup { partition: "aws-cn", region: "cn-north-1", account_id: "222222222222", name: GROUP };
        let trust = delivery_trust(&group);
        well_formed(&trust);
        let s = statement(&trust, "TrustFlowLogs");
        assert_eq!(s["Principal"]["Service"][0], "vpc-flow-logs.amazonaws.com");
        assert_eq!(s["Condition"]["StringEquals"]["aws:SourceAccount"], "222222222222");
        assert_eq!(s["Condition"]["ArnLike"]["aws:SourceArn"], "arn:aws-cn:ec2:cn-north-1:222222222222:vpc-flow-log/*");
        let policy = delivery_policy(&group);
        well_formed(&policy);
        let write = statement(&policy, "WriteFlowLogs");
        assert_eq!(actions(write), ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]);
        let arn = "arn:aws-cn:logs:cn-north-1:222222222222:log-group:/sagekeeper/vpc-flow-logs/t-e-abc123";
        assert_eq!(write["Resource"], serde_json::json!([arn, format!("{arn}:*")]));
        assert_eq!(policy["Statement"].as_array().map(Vec::len), Some(1));
    }
}
