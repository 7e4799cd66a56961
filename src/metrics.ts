/** Prometheus metrics (prom-client), one registry per running server, served at GET /metrics. */
import { Counter, Gauge, Registry } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly connectionsOpen = new Gauge({ name: 'mailnest_connections_open', help: 'Open connections per listener', labelNames: ['listener'], registers: [this.registry] });
  readonly sessions = new Counter({ name: 'mailnest_sessions_total', help: 'Sessions started per listener', labelNames: ['listener'], registers: [this.registry] });
  readonly accepted = new Counter({ name: 'mailnest_messages_accepted_total', help: 'Messages accepted, per entry point', labelNames: ['listener'], registers: [this.registry] });
  readonly rejected = new Counter({ name: 'mailnest_messages_rejected_total', help: 'Messages or recipients refused, by reason', labelNames: ['listener', 'reason'], registers: [this.registry] });
  readonly deliveries = new Counter({ name: 'mailnest_deliveries_total', help: 'Outbound delivery attempts per recipient, by outcome', labelNames: ['outcome'], registers: [this.registry] });
  readonly queueDepth = new Gauge({ name: 'mailnest_queue_depth', help: 'Recipients waiting in the outbound queue', registers: [this.registry] });

  /** Connection opened (+1) or closed (-1) on a listener. */
  count(listener: string, delta: number): void {
    this.connectionsOpen.inc({ listener }, delta);
    if (delta > 0) this.sessions.inc({ listener });
  }
}
