//! The routing rules meet the database: gathers what the rules and the
//! team strategies read (is the customer known, the round-robin position,
//! open tickets per person, the customer's last assignee), runs
//! `rules::evaluate` and turns the decision into a `Plan` the pipeline
//! applies. `rules explain` and `rules test` use the same code with a
//! read-only or an empty state, so what they print is what the daemon
//! does.

use std::sync::Arc;

use serde::Serialize;

use crate::config::{Config, Department, Role};
use crate::mail::parse::Inbound;
use crate::mail::quote;
use crate::rules::{self, Assign, AutoReply, Decision, Facts, Member, Pick, TeamState, Verdict};
use crate::store::{Ticket, Tx};

/// Where strategies read their state.
pub enum State<'t> {
    /// The daemon: takes the next round-robin number.
    Live(&'t mut Tx),
    /// `rules explain`: reads without changing anything.
    Peek(&'t mut Tx),
    /// `rules test`: no history, round-robin at its first member.
    Empty,
}

impl State<'_> {
    fn tx(&mut self) -> Option<&mut Tx> {
        match self {
            State::Live(tx) | State::Peek(tx) => Some(tx),
            State::Empty => None,
        }
    }
}

/// What happens to the acknowledgement of a new ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum AutoReplyPlan {
    /// The department's acknowledgement template.
    Acknowledgement,
    /// A template named by a rule.
    Template(String),
    /// None, and why.
    Off(String),
}

/// The decision, resolved to people and templates.
#[derive(Debug, Clone)]
pub struct Plan {
    pub decision: Decision,
    /// Matched rule names, in order.
    pub rules: Vec<String>,
    /// The ticket's department after the rules.
    pub department: Arc<Department>,
    pub assignee: Option<String>,
    /// How the assignee was chosen (or why there is none).
    pub assigned_by: String,
    /// Staff emails to notify.
    pub notify: Vec<String>,
    pub auto_reply: AutoReplyPlan,
    pub spam: bool,
    pub reject: Option<String>,
}

impl Plan {
    /// The summary kept on the ticket's history.
    pub fn history(&self) -> String {
        let a = &self.decision.actions;
        serde_json::json!({
            "rules": self.rules,
            "department": self.department.key,
            "category": a.category,
            "priority": a.priority.map(|p| p.as_str()),
            "tags": a.tags,
            "assignee": self.assignee,
            "assigned_by": self.assigned_by,
            "notify": self.notify,
            "auto_reply": self.auto_reply,
            "spam": self.spam,
            "reject": self.reject,
        })
        .to_string()
    }
}

/// Runs the rules for a mail arriving in `arrival`. `ticket` is the
/// ticket it threads into (None: a new ticket); `automatic` the reason it
/// is machine mail.
#[allow(clippy::too_many_arguments)]
pub async fn plan(
    config: &Config,
    state: &mut State<'_>,
    arrival: &Arc<Department>,
    ticket: Option<&Ticket>,
    mail: &Inbound,
    automatic: Option<&str>,
    now_ms: i64,
    trace: Option<&mut Vec<Verdict>>,
) -> anyhow::Result<Plan> {
    let sender = mail.from.as_ref().map_or("", |m| m.email.as_str());
    let customer_known = match state.tx() {
        Some(tx) if config.rules.uses_customer_known() && !sender.is_empty() => {
            tx.customer_known(sender).await?
        }
        _ => ticket.is_some(),
    };
    let new_text = if config.rules.uses_text() {
        quote::new_text(&mail.text)
    } else {
        ""
    };
    let facts = Facts::new(
        &arrival.key,
        mail,
        new_text,
        ticket.is_some(),
        customer_known,
        now_ms,
    );
    let decision = rules::evaluate(&config.rules, &facts, trace);
    let a = &decision.actions;
    let rule_names: Vec<String> = decision
        .rule_names(&config.rules)
        .into_iter()
        .map(str::to_string)
        .collect();
    let department = match (&a.set_department, ticket) {
        (Some(k), _) => config.department(k).cloned(),
        (None, Some(t)) => config.department(&t.department).cloned(),
        (None, None) => None,
    }
    .unwrap_or_else(|| arrival.clone());
    let first_rule = |pred: &dyn Fn(&rules::Actions) -> bool| -> String {
        decision
            .matched
            .iter()
            .rev()
            .map(|i| &config.rules.rules[*i])
            .find(|r| pred(&r.actions))
            .map_or_else(String::new, |r| format!("rule `{}`", r.name))
    };
    // Spam wins over reject: never send a rejection to spam.
    let reject = if a.spam { None } else { a.reject.clone() };
    let quiet = a.spam || reject.is_some();

    let (assignee, assigned_by) = if quiet {
        (None, "no assignment: spam or rejected".to_string())
    } else if let Some(t) = ticket.filter(|t| t.assignee.is_some()) {
        (t.assignee.clone(), "kept the ticket's assignee".to_string())
    } else if ticket.is_some() && a.assign.is_none() {
        // default_assignee is for new tickets; a reply assigns only by rule.
        (None, "a reply: only a rule's `assign` assigns".to_string())
    } else {
        let (target, source) = match &a.assign {
            Some(target) => (Some(target.clone()), first_rule(&|x| x.assign.is_some())),
            None => (
                department.default_assignee.as_ref().map(|d| {
                    if d.contains('@') {
                        Assign::Staff(d.clone())
                    } else {
                        Assign::Team {
                            team: d.clone(),
                            strategy: None,
                        }
                    }
                }),
                format!("default_assignee of {}", department.key),
            ),
        };
        match target {
            None => (None, "no rule assigns and no default_assignee".to_string()),
            Some(target) => {
                let customer = ticket.map_or(sender, |t| t.customer_email.as_str());
                let p = resolve(config, state, &target, customer).await?;
                (p.assignee, format!("{source}: {}", p.how))
            }
        }
    };

    let mut notify: Vec<String> = Vec::new();
    let mut add = |email: &str| {
        if !notify.iter().any(|n| n == email) {
            notify.push(email.to_string());
        }
    };
    // Never for automatic mail: a bounce of a notification would come
    // back, match again and notify again, forever.
    if !quiet && automatic.is_none() {
        for n in &a.notify {
            match config.rules.team(n) {
                Some(team) => team
                    .members
                    .iter()
                    .filter(|m| config.staff_member(m).is_some_and(|s| !s.away))
                    .for_each(|m| add(m)),
                None => {
                    if config.staff_member(n).is_some_and(|s| !s.away) {
                        add(n)
                    }
                }
            }
        }
        if ticket.is_none() && assignee.is_none() && automatic.is_none() {
            for m in managers(config, &department.key) {
                add(&m);
            }
        }
    }

    let auto_reply = if let Some(reason) = automatic {
        AutoReplyPlan::Off(format!("automatic mail: {reason}"))
    } else if a.spam {
        AutoReplyPlan::Off(format!("{}: spam", first_rule(&|x| x.spam)))
    } else if reject.is_some() {
        AutoReplyPlan::Off(format!(
            "{}: rejected (the rejection template is sent instead)",
            first_rule(&|x| x.reject.is_some())
        ))
    } else if ticket.is_some() {
        AutoReplyPlan::Off("threaded into an existing ticket".into())
    } else {
        match &a.auto_reply {
            Some(AutoReply::Off) => AutoReplyPlan::Off(format!(
                "{}: auto_reply = false",
                first_rule(&|x| x.auto_reply.is_some())
            )),
            Some(AutoReply::Template(name)) => AutoReplyPlan::Template(name.clone()),
            None => AutoReplyPlan::Acknowledgement,
        }
    };

    Ok(Plan {
        rules: rule_names,
        department,
        assignee,
        assigned_by,
        notify,
        auto_reply,
        spam: a.spam,
        reject,
        decision,
    })
}

/// Managers of a department (staff with role manager listing it), else
/// every manager.
pub fn managers(config: &Config, department: &str) -> Vec<String> {
    let of_department: Vec<String> = config
        .staff
        .iter()
        .filter(|s| s.role == Role::Manager && !s.away)
        .filter(|s| s.departments.iter().any(|d| d == department))
        .map(|s| s.email.clone())
        .collect();
    if !of_department.is_empty() {
        return of_department;
    }
    config
        .staff
        .iter()
        .filter(|s| s.role == Role::Manager && !s.away)
        .map(|s| s.email.clone())
        .collect()
}

/// A person for an assignment target.
pub async fn resolve(
    config: &Config,
    state: &mut State<'_>,
    target: &Assign,
    customer: &str,
) -> anyhow::Result<Pick> {
    let (team_name, strategy) = match target {
        Assign::Staff(email) => {
            return Ok(match config.staff_member(email) {
                Some(s) if s.away => Pick {
                    assignee: None,
                    how: format!("{email} is away"),
                },
                Some(_) => Pick {
                    assignee: Some(email.clone()),
                    how: email.clone(),
                },
                None => Pick {
                    assignee: None,
                    how: format!("{email} is not staff"),
                },
            });
        }
        Assign::Team { team, strategy } => (team, strategy),
    };
    let Some(team) = config.rules.team(team_name) else {
        return Ok(Pick {
            assignee: None,
            how: format!("no team `{team_name}`"),
        });
    };
    let strategy = strategy.unwrap_or(team.strategy);
    let members: Vec<Member<'_>> = team
        .members
        .iter()
        .filter_map(|m| config.staff_member(m))
        .map(|s| Member {
            email: &s.email,
            away: s.away,
            capacity: s.capacity.or(team.capacity),
        })
        .collect();
    let needs_load = strategy == rules::Strategy::LeastOpen
        || team.fallback == rules::Strategy::LeastOpen
        || members.iter().any(|m| m.capacity.is_some());
    let mut s = TeamState {
        round_robin: 1,
        ..TeamState::default()
    };
    let rr_name = format!("team:{}", team.name);
    let uses_rr = strategy == rules::Strategy::RoundRobin
        || (strategy == rules::Strategy::StickyCustomer
            && team.fallback == rules::Strategy::RoundRobin);
    match state {
        State::Live(tx) | State::Peek(tx) => {
            if needs_load {
                s.open = tx.open_counts().await?;
            }
            if strategy == rules::Strategy::StickyCustomer && !customer.is_empty() {
                s.last_assignee = tx.last_assignee_of(customer).await?;
            }
        }
        State::Empty => {}
    }
    // The round-robin number is taken only when it will be used, so a
    // sticky pick does not advance the rotation.
    let sticky_hit = strategy == rules::Strategy::StickyCustomer
        && s.last_assignee
            .as_deref()
            .is_some_and(|l| members.iter().any(|m| m.email == l && m.available(&s)));
    // Nobody available: no pick, so the rotation does not move.
    let anyone = members.iter().any(|m| m.available(&s));
    if uses_rr && !sticky_hit && anyone {
        s.round_robin = match state {
            State::Live(tx) => tx.next_round_robin(&rr_name).await?,
            State::Peek(tx) => tx.peek_round_robin(&rr_name).await?,
            State::Empty => 1,
        };
    }
    let p = rules::pick(&members, strategy, team.fallback, &s);
    Ok(Pick {
        assignee: p.assignee,
        how: format!("team `{}` {}", team.name, p.how),
    })
}
