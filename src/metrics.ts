/**
 * Prometheus metrics, one set per running server, served at GET /metrics. The counts are kept
 * here; prom-client renders them in Prometheus' text format, and is loaded on the first scrape:
 * loaded at start it would cost every server, scraped or not, 2–3 MiB.
 */
type Labels = Record<string, string>;

class Series {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  readonly labelNames: string[];
  /** Value per label set (keyed by the label values in labelNames' order). */
  private readonly values = new Map<string, { labels: Labels; value: number }>();

  constructor(type: 'counter' | 'gauge', name: string, help: string, labelNames: string[] = []) {
    this.type = type;
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  /** Adds `by` (a counter only ever grows; a gauge may go down). */
  inc(labels: Labels = {}, by = 1): void {
    this.entry(labels).value += by;
  }

  set(value: number, labels: Labels = {}): void {
    this.entry(labels).value = value;
  }

  entries(): Iterable<{ labels: Labels; value: number }> {
    return this.values.values();
  }

  private entry(labels: Labels): { labels: Labels; value: number } {
    const key = this.labelNames.map((n) => labels[n] ?? '').join('\u0000');
    let e = this.values.get(key);
    if (!e) {
      e = { labels, value: 0 };
      this.values.set(key, e);
    }
    return e;
  }
}

export class Metrics {
  readonly connectionsOpen = new Series('gauge', 'mailnest_connections_open', 'Open connections per listener', ['listener']);
  readonly sessions = new Series('counter', 'mailnest_sessions_total', 'Sessions started per listener', ['listener']);
  readonly accepted = new Series('counter', 'mailnest_messages_accepted_total', 'Messages accepted, per entry point', ['listener']);
  readonly rejected = new Series('counter', 'mailnest_messages_rejected_total', 'Messages or recipients refused, by reason', ['listener', 'reason']);
  readonly deliveries = new Series('counter', 'mailnest_deliveries_total', 'Outbound delivery attempts per recipient, by outcome', ['outcome']);
  readonly queueDepth = new Series('gauge', 'mailnest_queue_depth', 'Recipients waiting in the outbound queue');

  /** Connection opened (+1) or closed (-1) on a listener. */
  count(listener: string, delta: number): void {
    this.connectionsOpen.inc({ listener }, delta);
    if (delta > 0) this.sessions.inc({ listener });
  }

  /** Every series in Prometheus' text exposition format, and its content type. */
  async render(): Promise<{ contentType: string; text: string }> {
    const { Counter, Gauge, Registry } = await import('prom-client');
    const registry = new Registry();
    const all = [this.connectionsOpen, this.sessions, this.accepted, this.rejected, this.deliveries, this.queueDepth];
    for (const s of all) {
      const options = { name: s.name, help: s.help, labelNames: s.labelNames, registers: [registry] };
      if (s.type === 'counter') {
        const c = new Counter(options);
        for (const { labels, value } of s.entries()) c.inc(labels, value);
      } else {
        const g = new Gauge(options);
        for (const { labels, value } of s.entries()) g.set(labels, value);
      }
    }
    return { contentType: registry.contentType, text: await registry.metrics() };
  }
}
