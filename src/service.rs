//! Staff actions on tickets: reply, note, assign, close, reopen. The CLI
//! calls these today; the web view and reply-by-email will call the same
//! functions. Each action is one transaction; mail it causes is queued in
//! that transaction and sent by the outbox task of the running daemon.
//!
//! Staff identity comes from the caller (the operator's command line, later
//! a web session), never from a mail's `From:`; the staff member must be
//! configured and belong to the ticket's department (or manage it).

use thiserror::Error;

use crate::config::{Config, Department, Role};
use crate::mail::compose::{self, Author};
use crate::mail::parse::Mailbox;
use crate::pipeline::{QueuedMail, queue_mail};
use crate::store::{NewMessage, Status, Store, Ticket, Tx};
use crate::templates;

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("no ticket {0}")]
    NoTicket(String),
    #[error("`{0}` is not a configured staff member")]
    NotStaff(String),
    #[error("{staff} does not work in department {department}")]
    NotInDepartment { staff: String, department: String },
    #[error("ticket {0} is closed; reopen it first")]
    Closed(String),
    #[error("ticket {0} is already {1}")]
    AlreadyInState(String, &'static str),
    #[error("the text is empty")]
    EmptyText,
    #[error("department {0} is no longer configured")]
    NoDepartment(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type Result<T> = std::result::Result<T, ServiceError>;

pub struct Service<'a> {
    pub store: &'a Store,
    pub config: &'a Config,
    pub secret: &'a [u8],
}

impl Service<'_> {
    /// Begins the action's transaction with its ticket locked.
    async fn begin(&self, reference: &str) -> Result<(Tx, Ticket)> {
        let mut tx = self.store.begin().await?;
        let ticket = tx
            .lock_ticket(reference)
            .await?
            .ok_or_else(|| ServiceError::NoTicket(reference.to_ascii_uppercase()))?;
        Ok((tx, ticket))
    }

    fn department(&self, ticket: &Ticket) -> Result<&Department> {
        self.config
            .department(&ticket.department)
            .map(|d| d.as_ref())
            .ok_or_else(|| ServiceError::NoDepartment(ticket.department.clone()))
    }

    /// The staff member's canonical address, when they may act on the ticket.
    fn staff_for(&self, email: &str, ticket: &Ticket) -> Result<String> {
        let staff = self
            .config
            .staff_member(email)
            .ok_or_else(|| ServiceError::NotStaff(email.to_string()))?;
        let member = staff
            .departments
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&ticket.department));
        if !member && staff.role != Role::Manager {
            return Err(ServiceError::NotInDepartment {
                staff: staff.email.clone(),
                department: ticket.department.clone(),
            });
        }
        Ok(staff.email.clone())
    }

    fn customer(ticket: &Ticket) -> Mailbox {
        Mailbox {
            name: ticket.customer_name.clone(),
            email: ticket.customer_email.clone(),
        }
    }

    /// A reply mailed to the customer (and the people they copied); the
    /// ticket waits for the customer (pending).
    pub async fn reply(&self, reference: &str, staff: &str, text: &str) -> Result<()> {
        let text = text.trim_end();
        if text.trim().is_empty() {
            return Err(ServiceError::EmptyText);
        }
        let (mut tx, ticket) = self.begin(reference).await?;
        let staff = self.staff_for(staff, &ticket)?;
        if ticket.status == Status::Closed {
            return Err(ServiceError::Closed(ticket.reference));
        }
        let department = self.department(&ticket)?;
        let now = crate::now_ms();
        let (in_reply_to, references) = parent(&mut tx, ticket.ticket_id).await?;
        let cc: Vec<Mailbox> = tx
            .participants(ticket.ticket_id)
            .await?
            .into_iter()
            .map(|email| Mailbox { name: None, email })
            .collect();
        queue_mail(
            &mut tx,
            department,
            &ticket,
            self.secret,
            QueuedMail {
                kind: "staff",
                author: Author::Person,
                staff: Some(&staff),
                to: &[Self::customer(&ticket)],
                cc: &cc,
                subject: &compose::tagged_subject(&ticket.reference, &ticket.subject, true),
                body: &format!("{text}\n"),
                in_reply_to: in_reply_to.as_deref(),
                references: &references,
                installation: &self.config.general.installation,
            },
            now,
        )
        .await?;
        tx.set_status(ticket.ticket_id, Status::Pending, now)
            .await?;
        tx.insert_event(ticket.ticket_id, "replied", Some(&staff), None, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An internal note: stored on the ticket, never mailed.
    pub async fn note(&self, reference: &str, staff: &str, text: &str) -> Result<()> {
        if text.trim().is_empty() {
            return Err(ServiceError::EmptyText);
        }
        let (mut tx, ticket) = self.begin(reference).await?;
        let staff = self.staff_for(staff, &ticket)?;
        let now = crate::now_ms();
        tx.insert_message(&NewMessage {
            ticket_id: ticket.ticket_id,
            direction: "out",
            kind: "note",
            author: Some(&staff),
            from_email: &staff,
            body_text: text.trim_end(),
            created_at: now,
            ..NewMessage::default()
        })
        .await?;
        tx.touch(ticket.ticket_id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Hands the ticket to a staff member of its department.
    pub async fn assign(&self, reference: &str, staff: &str) -> Result<()> {
        let (mut tx, ticket) = self.begin(reference).await?;
        let staff = self.staff_for(staff, &ticket)?;
        let now = crate::now_ms();
        tx.set_assignee(ticket.ticket_id, Some(&staff), now).await?;
        tx.insert_event(ticket.ticket_id, "assigned", None, Some(&staff), now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes the ticket and mails the customer the closure template.
    pub async fn close(&self, reference: &str, by: Option<&str>) -> Result<()> {
        let (mut tx, ticket) = self.begin(reference).await?;
        let by = by.map(|s| self.staff_for(s, &ticket)).transpose()?;
        if ticket.status == Status::Closed {
            return Err(ServiceError::AlreadyInState(ticket.reference, "closed"));
        }
        let department = self.department(&ticket)?;
        let now = crate::now_ms();
        let customer = Self::customer(&ticket);
        let (subject, body) =
            department
                .template(templates::Kind::Closure)
                .render(&templates::Values {
                    reference: &ticket.reference,
                    subject: &ticket.subject,
                    department: &department.name,
                    customer_name: customer.name.as_deref().unwrap_or(&customer.email),
                    detail: "",
                });
        let (in_reply_to, references) = parent(&mut tx, ticket.ticket_id).await?;
        let suppressed = match customer.email.as_str() {
            "" => None,
            email => tx.suppressed_until(email, now).await?,
        };
        if let Some(until) = suppressed {
            tx.insert_event(
                ticket.ticket_id,
                "suppressed",
                None,
                Some(&format!(
                    "no closure mail: {} bounced repeatedly (automatic mail held until {})",
                    customer.email,
                    crate::format_ms(until)
                )),
                now,
            )
            .await?;
            tx.bump_counter("auto_mail_suppressed", 1).await?;
            tx.bump_counter("auto_mail_suppressed.bounced_address", 1)
                .await?;
        } else if !customer.email.is_empty() {
            queue_mail(
                &mut tx,
                department,
                &ticket,
                self.secret,
                QueuedMail {
                    kind: "closure",
                    author: Author::AutoGenerated,
                    staff: by.as_deref(),
                    to: std::slice::from_ref(&customer),
                    cc: &[],
                    subject: &compose::tagged_subject(&ticket.reference, &subject, false),
                    body: &body,
                    in_reply_to: in_reply_to.as_deref(),
                    references: &references,
                    installation: &self.config.general.installation,
                },
                now,
            )
            .await?;
        }
        tx.set_status(ticket.ticket_id, Status::Closed, now).await?;
        tx.insert_event(ticket.ticket_id, "closed", by.as_deref(), None, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn reopen(&self, reference: &str) -> Result<()> {
        let (mut tx, ticket) = self.begin(reference).await?;
        if ticket.status != Status::Closed {
            return Err(ServiceError::AlreadyInState(
                ticket.reference,
                ticket.status.as_str(),
            ));
        }
        let now = crate::now_ms();
        tx.set_status(ticket.ticket_id, Status::Open, now).await?;
        tx.insert_event(ticket.ticket_id, "reopened", None, None, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// `In-Reply-To` and `References` for our next mail on a ticket.
async fn parent(
    tx: &mut crate::store::Tx,
    ticket_id: i64,
) -> anyhow::Result<(Option<String>, Vec<String>)> {
    Ok(match tx.thread_parent(ticket_id).await? {
        Some((id, mut refs)) => {
            refs.push(id.clone());
            (Some(id), refs)
        }
        None => (None, Vec::new()),
    })
}
