// visitorflow control room: county overview and area detail, fed by /api/v1/live (SSE read with
// fetch, so the bearer token goes in a header, never in a URL). Vanilla JS, no build step.
'use strict';

const TEXT = {
  zh: {
    title: '乌鲁木齐县景区客流监测', subtitle: 'LB/T 034 承载量实时监测', inside: '在园人数',
    entries: '今日入园', logout: '退出', login_title: '登录控制室',
    login_hint: '请输入访问令牌（由管理员通过 visitorflow token 生成）。', login: '登录',
    back: '← 全县概览', day_curve: '今日客流曲线', alerts: '告警', parts: '景点、停车场与集散中心',
    devices: '计数设备', live_on: '实时', live_retry: '重连中', live_off: '离线',
    bad_token: '令牌无效或已停用', no_capacity: '未核定', stale: '数据中断', closed: '暂停开放',
    dq: '数据质量', today: '今日', peak: '峰值', load: '负荷', updated: '更新',
    red_in: (m) => `预计${m}分钟后达到红色`, orange_in: (m) => `预计${m}分钟后达到橙色`,
    at_red: '已达红色：停止售票', ack: '确认', acked_by: (b) => `已确认（${b}）`,
    no_alerts: '暂无告警', kind: '类型', severity: '级别', state: '状态', since: '开始',
    name: '名称', occupancy: '人数/容量', level: '等级', device: '设备', online: '在线',
    missing: '缺失报文', last: '最近报文', yes: '是', no: '否', none: '无',
    ago: (s) => s < 60 ? `${s}秒前` : s < 3600 ? `${Math.round(s / 60)}分钟前` : `${Math.round(s / 3600)}小时前`,
    levels: { normal: '正常', blue: '蓝色', yellow: '黄色', orange: '橙色', red: '红色', stale: '未知', none: '—' },
    states: { firing: '告警中', acknowledged: '已确认', resolved: '已解除' },
    severities: { info: '提示', warning: '一般', major: '重要', critical: '紧急' },
    kinds: {
      instant_level: '瞬时承载', daily_level: '日承载', early_warning: '趋势预警', forecast: '明日预测预警', stale: '数据中断',
      silent_devices: '设备静默', silent: '设备静默', drift: '计数偏差', missing_reports: '报文缺失', clock_skew: '时钟偏差', hazard: '灾害/险情', admission: '售票', oversold: '超售',
    },
    space_kinds: { zone: '景点', car_park: '停车场', hub: '集散中心', scenic_area: '景区', county: '全县' },
    capacity: '核定容量', people: '人', vehicles: '辆',
    dispatch_title: '集散中心调度建议', waiting: '候车', vehicles_home: '站内车辆', advised_at: '建议时间',
    send_now: '立即发车', seats: '座位', passengers: '乘客', destination: '目的地', basis: '依据',
    no_shuttles: '暂无发车建议', paused_routes: '暂停线路', diversions: '分流建议', held: '暂缓',
    hold_all: '全部暂缓', follow: '已执行', override: '不采纳', override_reason: '不采纳原因（必填）',
    reason_needed: '请填写不采纳的原因', followed_by: (b) => `已执行（${b}）`,
    overridden_by: (b, r) => `未采纳（${b}）：${r}`, no_advice: '暂无调度建议',
    modes: { shuttle: '班车', self_drive: '自驾' },
    x_occ: (o, c) => `在园 ${o}${c != null ? ` / ${c}` : ''}`, x_spare: (n) => `可接纳 ${n}`,
    x_road: (n) => `在途 ${n}`, x_inflow: (n) => `途中预计流入 ${n}`, x_queue: (n) => `候车 ${n}`,
    x_red: (m) => `${m}分钟后达红色`, x_travel: (m) => `车程 ${m}分钟`, x_full: '满',
    x_waiting: (n) => `${n}人待发`, x_to: (n) => `${n}人改往`, x_unit: (n) => `${n}辆`,
    recount_title: '人工清点', recount_space: '清点范围', recount_inside: '当前在园人数', recount_reason: '原因',
    recount_reason_ph: '如：闭园清场、入口人工点数', recount_submit: '提交清点', recount_latest: '最近校正',
    recount_bad_inside: '请输入 0 至 10,000,000 的整数', recount_need_reason: '请填写清点原因',
    recount_sending: '提交中…', recount_applied: (b, n, d) => `已校正：${b} → ${n}（${d}）`,
    recount_pending: (id) => `已记录（#${id}），等待计数服务应用`, no_recounts: '暂无人工校正',
    slots_title: '分时预约', slot: '时段', remaining: '余票', sold: '已售', checked_in: '已入园', expected: '待到',
    sales: { open: '正常售票', paused: '暂停售票', closed: '停止售票（关闭）' }, slot_full: '约满',
    stale_bookings: '票务数据未更新', oversold: (n) => `超售${n}`,
    sales_reason: '暂停原因', sales_reason_ph: '如：道路封闭、演出活动', sales_pause: '暂停售票',
    sales_resume: '恢复售票', sales_need_reason: '请填写暂停原因', sales_held: '已暂停售票，票务系统将收到通知',
    sales_released: '已确认恢复：数据允许时恢复售票',
    at: '时间', counted: '清点', correction: '校正', by: '操作人', pending: '待应用',
    forecast_title: '明日客流预测（对比今日）', fc_today: '今日实况', fc_tomorrow: '明日预测', fc_band: '80% 区间',
    fc_summary: (day, e, lo, hi, p, pct, at) => `${day}预计入园 ${e} 人次（80%区间 ${lo}–${hi}），峰值约 ${p} 人${pct != null ? `（瞬时承载量的${pct}%）` : ''}，约在 ${at}`,
    fc_none: '暂无预测（历史数据不足或尚未运行）',
  },
  en: {
    title: 'Urumqi County visitor flow', subtitle: 'LB/T 034 capacity, live', inside: 'Inside now',
    entries: 'Entries today', logout: 'Log out', login_title: 'Control room sign-in',
    login_hint: 'Enter your access token (an admin makes one with `visitorflow token`).', login: 'Sign in',
    back: '← County overview', day_curve: "Today's curve", alerts: 'Alerts', parts: 'Zones, car parks and hubs',
    devices: 'Counters', live_on: 'Live', live_retry: 'Reconnecting', live_off: 'Offline',
    bad_token: 'Unknown or revoked token', no_capacity: 'unrated', stale: 'Stale', closed: 'Closed',
    dq: 'Data quality', today: 'Today', peak: 'Peak', load: 'Load', updated: 'Updated',
    red_in: (m) => `red in ${m} min`, orange_in: (m) => `orange in ${m} min`,
    at_red: 'At red: stop ticket sales', ack: 'Acknowledge', acked_by: (b) => `acknowledged (${b})`,
    no_alerts: 'No alerts', kind: 'Kind', severity: 'Severity', state: 'State', since: 'Since',
    name: 'Name', occupancy: 'Count / capacity', level: 'Level', device: 'Device', online: 'Online',
    missing: 'Missing', last: 'Last report', yes: 'yes', no: 'no', none: '—',
    ago: (s) => s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`,
    levels: { normal: 'Normal', blue: 'Blue', yellow: 'Yellow', orange: 'Orange', red: 'Red', stale: 'Unknown', none: '—' },
    states: { firing: 'firing', acknowledged: 'acknowledged', resolved: 'resolved' },
    severities: { info: 'info', warning: 'warning', major: 'major', critical: 'critical' },
    kinds: {
      instant_level: 'Instant load', daily_level: 'Daily load', early_warning: 'Trend warning', forecast: 'Day-ahead warning', stale: 'Stale data',
      silent_devices: 'Silent counters', silent: 'Silent counter', drift: 'Counter drift', missing_reports: 'Missing reports', clock_skew: 'Clock skew', hazard: 'Hazard', admission: 'Ticket sales', oversold: 'Over-sold slots',
    },
    space_kinds: { zone: 'Zone', car_park: 'Car park', hub: 'Hub', scenic_area: 'Scenic area', county: 'County' },
    capacity: 'capacity', people: 'people', vehicles: 'vehicles',
    dispatch_title: 'Distribution centres: dispatch advice', waiting: 'Waiting', vehicles_home: 'Vehicles in',
    advised_at: 'Advised', send_now: 'Send now', seats: 'Seats', passengers: 'Passengers',
    destination: 'Destination', basis: 'Based on', no_shuttles: 'No shuttles to send', paused_routes: 'Paused',
    diversions: 'Diversions', held: 'Held', hold_all: 'Hold everyone', follow: 'Followed', override: 'Override',
    override_reason: 'Why not (required)', reason_needed: 'Give the reason for overriding',
    followed_by: (b) => `followed (${b})`, overridden_by: (b, r) => `overridden (${b}): ${r}`,
    no_advice: 'No advice yet', modes: { shuttle: 'shuttle', self_drive: 'self-drive' },
    x_occ: (o, c) => `inside ${o}${c != null ? ` / ${c}` : ''}`, x_spare: (n) => `room ${n}`,
    x_road: (n) => `on the road ${n}`, x_inflow: (n) => `inflow on the way ${n}`, x_queue: (n) => `waiting ${n}`,
    x_red: (m) => `red in ${m} min`, x_travel: (m) => `${m} min ride`, x_full: 'full',
    x_waiting: (n) => `${n} waiting`, x_to: (n) => `${n} to send elsewhere`, x_unit: (n) => `${n}`,
    recount_title: 'Recount', recount_space: 'Space', recount_inside: 'Inside now', recount_reason: 'Reason',
    recount_reason_ph: 'e.g. closing sweep, count at the gate', recount_submit: 'Submit count',
    recount_latest: 'Latest corrections', recount_bad_inside: 'Enter a whole number from 0 to 10,000,000',
    recount_need_reason: 'Give the reason for the count', recount_sending: 'Sending…',
    recount_applied: (b, n, d) => `Corrected: ${b} → ${n} (${d})`,
    recount_pending: (id) => `Recorded (#${id}); waiting for the counter service to apply it`,
    slots_title: 'Timed entry', slot: 'Slot', remaining: 'Left', sold: 'Sold', checked_in: 'Entered', expected: 'Expected',
    sales: { open: 'Selling', paused: 'Sales paused', closed: 'Sales stopped (closed)' }, slot_full: 'full',
    stale_bookings: 'ticketing data not current', oversold: (n) => `${n} over-sold`,
    sales_reason: 'Reason to pause', sales_reason_ph: 'e.g. road closed, event on site', sales_pause: 'Pause sales',
    sales_resume: 'Resume sales', sales_need_reason: 'Give the reason to pause sales',
    sales_held: 'Sales paused; ticketing systems are told', sales_released: 'Resumption confirmed: sales resume when the figures allow',
    no_recounts: 'No corrections by hand', at: 'Time', counted: 'Counted', correction: 'Correction', by: 'By',
    pending: 'pending',
    forecast_title: "Tomorrow's forecast (against today)", fc_today: 'Today, counted', fc_tomorrow: 'Tomorrow, forecast', fc_band: '80% interval',
    fc_summary: (day, e, lo, hi, p, pct, at) => `${day}: ${e} entries expected (80%: ${lo}–${hi}), peak about ${p}${pct != null ? ` (${pct}% of the instantaneous maximum)` : ''} around ${at}`,
    fc_none: 'No forecast yet (too little history, or not run)',
  },
};
const DQ_KINDS = new Set(['silent_devices', 'silent', 'drift', 'missing_reports', 'clock_skew']);
// Device ids a badge's tooltip names before "+N".
const DQ_DEVICES = 10;
const SPARK_HOURS = 3;

const S = {
  lang: localStorage.getItem('vf-lang') || 'zh',
  spaces: new Map(), // id → space as in /api/v1/spaces
  order: [],
  series: new Map(), // id → [{t, v}]
  dispatch: new Map(), // hub id → its current advice as in /api/v1/dispatch
  lastEventId: null,
  stream: null,
  view: null,
};

const $ = (id) => document.getElementById(id);
const t = (k) => TEXT[S.lang][k];
const nameOf = (s) => (S.lang === 'zh' ? s.name_zh : s.name_en);
const fmt = (n) => (n == null ? '–' : Number(n).toLocaleString(S.lang === 'zh' ? 'zh-CN' : 'en-US'));

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const svg = (tag, attrs) => {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
};

// ---- API ----

const token = () => sessionStorage.getItem('vf-token');

class Unauthorized extends Error {}

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${token()}` }, opts.headers || {});
  if (opts.body) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, Object.assign({}, opts, { headers }));
  if (r.status === 401) throw new Unauthorized();
  const body = r.headers.get('content-type')?.includes('json') ? await r.json() : await r.text();
  if (!r.ok) {
    const err = new Error(body?.error?.reason || `HTTP ${r.status}`);
    err.status = r.status;
    throw err;
  }
  return body;
}

// ---- live feed ----

function setLive(state) {
  $('live').dataset.state = state;
  $('live-text').textContent = t(state === 'on' ? 'live_on' : state === 'retry' ? 'live_retry' : 'live_off');
}

async function connectLive() {
  const ctl = new AbortController();
  S.stream = ctl;
  const headers = { Authorization: `Bearer ${token()}`, Accept: 'text/event-stream' };
  if (S.lastEventId) headers['Last-Event-ID'] = S.lastEventId;
  try {
    const r = await fetch('/api/v1/live', { headers, signal: ctl.signal, cache: 'no-store' });
    if (r.status === 401) return logout(true);
    if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
    setLive('on');
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        dispatch(block);
      }
    }
  } catch (e) {
    if (ctl.signal.aborted) return;
  }
  if (S.stream !== ctl || !token()) return;
  setLive('retry');
  setTimeout(() => { if (S.stream === ctl) connectLive(); }, 2000);
}

function dispatch(block) {
  let event = 'message', data = [], id = null;
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue; // keep-alive comment
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id') id = value;
  }
  if (id) S.lastEventId = id;
  if (!data.length) return;
  const payload = JSON.parse(data.join('\n'));
  if (event === 'snapshot') {
    setSpaces(payload);
    render();
  } else if (event === 'space') {
    S.spaces.set(payload.id, payload);
    pushLivePoint(payload);
    updateSpace(payload.id);
  } else if (event === 'alert') {
    if (S.view?.area === payload.space) loadAlerts(payload.space);
  } else if (event === 'dispatch') {
    setAdvice(payload);
  }
  // `resync` is followed by a snapshot: nothing to do here.
}

function setSpaces(list) {
  S.spaces = new Map(list.map((s) => [s.id, s]));
  S.order = list.map((s) => s.id);
  for (const s of list) pushLivePoint(s);
}

function pushLivePoint(s) {
  const pts = S.series.get(s.id);
  if (!pts) return;
  const now = Date.now();
  const last = pts[pts.length - 1];
  if (last && now - last.t < 60000) last.v = s.occupancy;
  else pts.push({ t: now, v: s.occupancy });
  while (pts.length && pts[0].t < now - SPARK_HOURS * 3600e3) pts.shift();
}

// Occupancy at the end of each minute. The store stamps it on the minute a batch closes; minutes
// filled from a backlog carry only their flows, so walk back from the nearest known value (the
// live figure at the end).
function occupancyOf(points, now) {
  const out = new Array(points.length);
  let occ = now;
  for (let i = points.length - 1; i >= 0; i--) {
    const p = points[i];
    if (p.occupancy != null) occ = p.occupancy;
    out[i] = { t: Date.parse(p.bucket) + 60000, v: occ };
    occ = Math.max(0, occ - p.entries + p.exits);
  }
  return out;
}

async function loadSparks() {
  const from = new Date(Date.now() - SPARK_HOURS * 3600e3).toISOString();
  await Promise.all(areas().map(async (s) => {
    try {
      const r = await api(`/api/v1/spaces/${encodeURIComponent(s.id)}/series?step=1m&from=${encodeURIComponent(from)}`);
      S.series.set(s.id, occupancyOf(r.points, S.spaces.get(s.id)?.occupancy ?? 0));
      pushLivePoint(S.spaces.get(s.id));
      updateSpace(s.id);
    } catch (e) {
      if (e instanceof Unauthorized) logout(true);
    }
  }));
}

// ---- what a tile shows ----

const areas = () => S.order.map((id) => S.spaces.get(id)).filter((s) => s.kind === 'scenic_area');

function levelOf(s) {
  const st = s.status;
  if (!st) return 'none';
  if (st.stale) return 'stale';
  return st.instant.level || 'none';
}

function forecastText(s) {
  const st = s.status;
  if (!st || st.stale || !st.forecast) return ['', ''];
  const lv = st.instant.level;
  const min = (secs) => Math.max(1, Math.round(secs / 60));
  if (lv === 'red') return [t('at_red'), 'red'];
  const f = st.forecast;
  if (f.to_red_s != null && f.to_red_s <= 3 * 3600) return [t('red_in')(min(f.to_red_s)), 'red'];
  if (lv !== 'orange' && f.to_orange_s != null && f.to_orange_s <= 3 * 3600) return [t('orange_in')(min(f.to_orange_s)), ''];
  return ['', ''];
}

function trendOf(s) {
  const f = s.status?.forecast;
  if (!f || s.status.stale) return ['', 'flat'];
  const cap = s.status.instant.effective_capacity || s.instant_capacity;
  // Percent of capacity per hour; people per minute when unrated.
  const rate = cap ? (f.slope_per_min * 60 * 100) / cap : f.slope_per_min;
  if (rate > 2) return ['▲', 'up'];
  if (rate < -2) return ['▼', 'down'];
  return ['▶', 'flat'];
}

function badges(s) {
  const st = s.status;
  const out = [];
  if (st?.stale) out.push(el('span', { class: 'badge stale' }, t('stale')));
  if (st?.closed) out.push(el('span', { class: 'badge closed' }, t('closed')));
  const dq = (st?.alerts || []).filter((a) => DQ_KINDS.has(a.kind.type));
  if (dq.length) {
    const devices = (a) => {
      const ids = a.devices || (a.kind.device ? [a.kind.device] : []);
      const more = ids.length > DQ_DEVICES ? ` +${ids.length - DQ_DEVICES}` : '';
      return ids.length ? ` ${ids.slice(0, DQ_DEVICES).join(' ')}${more}` : '';
    };
    const title = dq.map((a) => t('kinds')[a.kind.type] + devices(a)).join(', ');
    out.push(el('span', { class: 'badge dq', title }, `${t('dq')} ${dq.length}`));
  }
  return out;
}

function sparkline(s) {
  const box = svg('svg', { class: 'spark', viewBox: '0 0 300 46', preserveAspectRatio: 'none' });
  const pts = S.series.get(s.id) || [];
  const cap = s.status?.instant.effective_capacity || s.instant_capacity;
  if (pts.length < 2) return box;
  const t1 = Date.now(), t0 = t1 - SPARK_HOURS * 3600e3;
  const top = Math.max(cap || 0, ...pts.map((p) => p.v), 1) * 1.05;
  const x = (tt) => ((tt - t0) / (t1 - t0)) * 300;
  const y = (v) => 44 - (v / top) * 42;
  const d = pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join('');
  box.append(svg('path', { class: 'area', d: `${d}L${x(pts[pts.length - 1].t).toFixed(1)},46L${x(pts[0].t).toFixed(1)},46Z` }));
  box.append(svg('path', { class: 'line', d }));
  if (cap) box.append(svg('line', { class: 'cap', x1: 0, x2: 300, y1: y(cap), y2: y(cap) }));
  return box;
}

function ago(ts) {
  if (!ts) return t('none');
  return t('ago')(Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000)));
}

// The warning ladder a level is read on (shown on hover of the level chip).
const ladderName = (l) => ({ lbt034: 'LB/T 034-2014', lbt068: 'LB/T 068-2017' })[l]
  ?? (l ? (S.lang === 'zh' ? '本地标准' : 'local ladder') : '');

function tile(s, detail) {
  const st = s.status;
  const lv = levelOf(s);
  const cap = st?.instant.effective_capacity ?? s.instant_capacity;
  const pct = cap ? Math.round((s.occupancy / cap) * 100) : null;
  const [arrow, dir] = trendOf(s);
  const [fc, fcClass] = forecastText(s);
  const bar = el('i');
  bar.style.width = `${Math.min(100, pct ?? 0)}%`;
  const action = st ? (S.lang === 'zh' ? st.instant.action_zh : st.instant.action_en) : '';
  const node = el('article', {
    class: `tile lv-${lv}`, 'data-space': s.id, 'data-level': lv, tabindex: detail ? null : 0,
    onclick: detail ? null : () => { location.hash = `#/area/${encodeURIComponent(s.id)}`; },
    onkeydown: detail ? null : (e) => { if (e.key === 'Enter') location.hash = `#/area/${encodeURIComponent(s.id)}`; },
  },
    el('div', { class: 'tile-head' },
      el('div', {}, el('h2', {}, nameOf(s)), S.lang === 'zh' ? el('div', { class: 'en' }, s.name_en) : null),
      el('div', { class: 'badges' }, badges(s))),
    el('div', { class: 'occ' },
      el('span', { class: 'occ-num' }, fmt(s.occupancy)),
      el('span', { class: 'cap' }, cap ? `/ ${fmt(cap)}` : `/ ${t('no_capacity')}`),
      el('span', { class: `trend ${dir}`, title: st?.forecast ? `${st.forecast.slope_per_min.toFixed(1)}/min` : '' }, arrow)),
    el('div', { class: 'bar' }, bar),
    el('div', { class: 'meta' },
      el('span', {}, `${t('entries')} `, el('b', { class: 'entries' }, fmt(s.entries_today)),
        s.daily_capacity ? ` / ${fmt(s.daily_capacity)}` : ''),
      pct != null ? el('span', {}, `${t('load')} `, el('b', {}, `${pct}%`)) : null,
      el('span', { class: 'hide-narrow' }, `${t('peak')} `, el('b', {}, fmt(s.peak_today))),
      el('span', {}, `${t('updated')} ${ago(s.last_report)}`)),
    el('div', { class: 'level-line' },
      el('span', { class: 'chip', title: ladderName(st?.instant.ladder) }, t('levels')[lv] || lv),
      el('span', { class: 'action' }, action)),
    el('div', { class: `forecast ${fcClass}` }, fc),
    sparkline(s));
  return node;
}

// ---- distribution centres: dispatch advice ----

const hubs = () => S.order.map((id) => S.spaces.get(id)).filter((s) => s.kind === 'hub');
const spaceName = (id) => { const s = S.spaces.get(id); return s ? nameOf(s) : id; };
const reasonText = (r) => (r ? (S.lang === 'zh' ? r.zh : r.en) : '');

// Newer advice replaces older; a decision arrives as the same advice again.
function setAdvice(row) {
  const cur = S.dispatch.get(row.hub);
  if (cur && cur.id > row.id) return;
  S.dispatch.set(row.hub, row);
  updateHub(row.hub);
}

async function loadDispatch() {
  try {
    for (const row of (await api('/api/v1/dispatch')).hubs) setAdvice(row);
  } catch (e) {
    if (e instanceof Unauthorized) logout(true);
  }
}

// The figures an item came from, in a line.
function explain(e) {
  if (!e) return '';
  const T = TEXT[S.lang];
  const parts = [];
  if (e.occupancy != null) parts.push(T.x_occ(fmt(e.occupancy), e.capacity != null ? fmt(e.capacity) : null));
  if (e.spare != null) parts.push(T.x_spare(fmt(e.spare)));
  if (e.on_road) parts.push(T.x_road(fmt(e.on_road)));
  if (e.forecast_inflow) parts.push(T.x_inflow(fmt(e.forecast_inflow)));
  if (e.forecast_min != null) parts.push(T.x_red(Math.max(0, Math.round(e.forecast_min))));
  if (e.queue) parts.push(T.x_queue(fmt(e.queue)));
  if (e.travel_min) parts.push(T.x_travel(e.travel_min));
  for (const c of e.car_parks || []) {
    parts.push(`${spaceName(c.car_park)} ${fmt(c.occupancy)}${c.capacity != null ? ` / ${fmt(c.capacity)}` : ''}${c.full ? ` ${T.x_full}` : ''}`);
  }
  return parts.join(' · ');
}

function decisionBox(row) {
  if (row.decision === 'followed') return el('div', { class: 'decision done' }, t('followed_by')(row.decided_by || ''));
  if (row.decision === 'overridden') {
    return el('div', { class: 'decision done overridden' }, t('overridden_by')(row.decided_by || '', row.decision_reason || ''));
  }
  const reason = el('input', { type: 'text', class: 'override-reason', maxlength: 2000, placeholder: t('override_reason'), 'aria-label': t('override_reason') });
  const error = el('span', { class: 'decision-error error' });
  const send = async (decision, button) => {
    const why = reason.value.trim();
    if (decision === 'overridden' && !why) {
      error.textContent = t('reason_needed');
      reason.focus();
      return;
    }
    for (const b of button.parentNode.querySelectorAll('button')) b.disabled = true;
    error.textContent = '';
    try {
      await api(`/api/v1/dispatch/advice/${row.id}/decision`, { method: 'POST', body: JSON.stringify({ decision, reason: why }) });
    } catch (e) {
      if (e instanceof Unauthorized) return logout(true);
      for (const b of button.parentNode.querySelectorAll('button')) b.disabled = false;
      error.textContent = e.message;
    }
    // The live feed brings the recorded decision back (and to every other control room).
  };
  return el('div', { class: 'decision' },
    el('button', { type: 'button', class: 'follow', onclick: (e) => send('followed', e.target) }, t('follow')),
    reason,
    el('button', { type: 'button', class: 'override ghost', onclick: (e) => send('overridden', e.target) }, t('override')),
    error);
}

function hubCard(hub) {
  const row = S.dispatch.get(hub.id);
  const a = row?.advice;
  const live = S.spaces.get(hub.id);
  // The hall's live count when its counter reports; the advice's figure otherwise.
  const queue = live?.last_report ? live.occupancy : (a?.queue ?? live?.occupancy);
  const time = (ts) => new Date(ts).toLocaleTimeString(S.lang === 'zh' ? 'zh-CN' : 'en-GB', { hour12: false, hour: '2-digit', minute: '2-digit' });
  const attention = a && (a.paused.length || a.diversions.length || a.hold);
  const head = el('div', { class: 'hub-head' },
    el('div', {}, el('h3', {}, nameOf(hub)), S.lang === 'zh' ? el('div', { class: 'en' }, hub.name_en) : null),
    el('div', { class: 'hub-figures' },
      el('span', {}, `${t('waiting')} `, el('b', { class: 'queue-num' }, fmt(queue)), ` ${t('people')}`),
      a ? el('span', {}, `${t('vehicles_home')} `, el('b', {}, fmt(a.vehicles_available))) : null,
      row ? el('span', { class: 'muted' }, `${t('advised_at')} ${time(row.at)}`) : null));
  if (!a) {
    return el('article', { class: 'hub', 'data-hub': hub.id }, head, el('p', { class: 'empty' }, t('no_advice')));
  }
  const shuttles = a.shuttles.filter((x) => x.send_now > 0);
  const parts = [head];
  const sep = S.lang === 'zh' ? '：' : ': ';
  if (a.hold) parts.push(el('div', { class: 'hold' }, `${t('hold_all')}${sep}${reasonText(a.hold)}`));
  parts.push(shuttles.length
    ? el('table', { class: 'shuttles' },
      el('tr', {}, el('th', {}, t('destination')), el('th', { class: 'num' }, t('send_now')), el('th', { class: 'num hide-narrow' }, t('passengers')), el('th', {}, t('basis'))),
      shuttles.map((x) => el('tr', { class: 'shuttle', 'data-area': x.area, 'data-send': x.send_now },
        el('td', {}, spaceName(x.area)),
        el('td', { class: 'num send' }, el('b', {}, t('x_unit')(x.send_now)), el('div', { class: 'muted' }, `${fmt(x.seats)} ${t('seats')}`)),
        el('td', { class: 'num hide-narrow' }, fmt(x.passengers)),
        el('td', { class: 'basis' }, reasonText(x.reason), el('div', { class: 'muted' }, explain(x.explanation))))))
    : el('p', { class: 'empty' }, t('no_shuttles')));
  const list = (title, cls, items) => (items.length ? el('div', { class: `hub-list ${cls}` }, el('h4', {}, title), el('ul', {}, items)) : null);
  parts.push(list(t('paused_routes'), 'paused-list', a.paused.map((p) => el('li', { class: 'paused', 'data-area': p.area, 'data-mode': p.mode },
    el('b', {}, spaceName(p.area)), ` (${t('modes')[p.mode] || p.mode}) — ${reasonText(p.reason)}`,
    el('div', { class: 'muted' }, explain(p.explanation))))));
  parts.push(list(t('diversions'), 'diversion-list', a.diversions.map((d) => el('li', { class: 'diversion', 'data-from': d.from_area },
    el('b', {}, spaceName(d.from_area)), ` → ${d.to.map((x) => `${spaceName(x.area)} (${t('x_spare')(fmt(x.spare))}, ${t('x_travel')(x.travel_min)})`).join(S.lang === 'zh' ? '、' : ', ') || '—'}`,
    el('div', { class: 'muted' }, `${t('x_to')(fmt(d.visitors))} · ${reasonText(d.reason)}`)))));
  parts.push(list(t('held'), 'held-list', a.held.map((h) => el('li', { class: 'held', 'data-area': h.area },
    el('b', {}, spaceName(h.area)), ` — ${t('x_waiting')(fmt(h.waiting))} · ${reasonText(h.reason)}`))));
  parts.push(decisionBox(row));
  return el('article', {
    class: `hub${attention ? ' attention' : ''}`, 'data-hub': hub.id, 'data-advice-id': row.id,
    'data-decision': row.decision || '',
  }, parts);
}

function renderHubs() {
  const list = hubs();
  $('dispatch').hidden = !list.length;
  $('hubs').replaceChildren(...list.map(hubCard));
}

function updateHub(id) {
  if (S.view?.area) return;
  const hub = S.spaces.get(id);
  if (!hub || hub.kind !== 'hub') return;
  const old = document.querySelector(`#hubs [data-hub="${CSS.escape(id)}"]`);
  // Keep a half-typed override reason across a live update of the same advice.
  const typing = old?.querySelector('.override-reason');
  const card = hubCard(hub);
  const fresh = card.querySelector('.override-reason');
  if (typing && fresh && old.dataset.adviceId === card.dataset.adviceId) {
    fresh.value = typing.value;
    if (document.activeElement === typing) setTimeout(() => fresh.focus(), 0);
  }
  if (old) old.replaceWith(card);
  else renderHubs();
}

// ---- views ----

function renderCounty() {
  const county = S.order.map((id) => S.spaces.get(id)).find((s) => s.kind === 'county');
  $('county').hidden = false;
  $('county-occ').textContent = fmt(county?.occupancy);
  $('county-entries').textContent = fmt(county?.entries_today);
  const counts = {};
  for (const a of areas()) counts[levelOf(a)] = (counts[levelOf(a)] || 0) + 1;
  const box = $('county-levels');
  box.replaceChildren(...['red', 'orange', 'yellow', 'blue', 'normal', 'stale']
    .filter((l) => counts[l])
    .map((l) => el('span', { class: `chip lv-${l}`, title: t('levels')[l] }, `${t('levels')[l]} ${counts[l]}`)));
}

function render() {
  if (!S.spaces.size) return;
  renderCounty();
  if (S.view?.area) return renderDetail();
  $('overview').hidden = false;
  $('detail').hidden = true;
  $('tiles').replaceChildren(...areas().map((s) => tile(s, false)));
  renderHubs();
}

function updateSpace(id) {
  const s = S.spaces.get(id);
  if (!s) return;
  renderCounty();
  if (s.kind === 'hub') return updateHub(id);
  if (S.view?.area) {
    if (id === S.view.area) $('detail-head').replaceChildren(tile(s, true));
    if (S.spaces.get(id).parent === S.view.area) renderChildren();
    return;
  }
  const old = document.querySelector(`#tiles [data-space="${CSS.escape(id)}"]`);
  if (old) old.replaceWith(tile(s, false));
}

function renderDetail() {
  const s = S.spaces.get(S.view.area);
  $('overview').hidden = true;
  $('detail').hidden = false;
  if (!s) return;
  $('detail-head').replaceChildren(tile(s, true));
  renderChildren();
  renderRecountTargets();
}

function renderChildren() {
  const kids = S.order.map((id) => S.spaces.get(id)).filter((c) => c.parent === S.view.area);
  if (!kids.length) return $('children').replaceChildren(el('p', { class: 'empty' }, t('none')));
  $('children').replaceChildren(el('table', {},
    el('tr', {}, el('th', {}, t('name')), el('th', {}, t('kind')), el('th', {}, t('occupancy')), el('th', {}, t('level'))),
    kids.map((c) => {
      const lv = levelOf(c);
      const cap = c.status?.instant.effective_capacity ?? c.instant_capacity;
      return el('tr', { 'data-space': c.id },
        el('td', {}, nameOf(c)),
        el('td', {}, t('space_kinds')[c.kind] || c.kind),
        el('td', { class: 'num' }, `${fmt(c.occupancy)}${cap ? ` / ${fmt(cap)}` : ''} ${t(c.unit === 'vehicles' ? 'vehicles' : 'people')}`),
        el('td', {}, el('span', { class: `chip lv-${lv}` }, t('levels')[lv])));
    })));
}

function kindText(kind) {
  const [head, tail] = kind.split(/\.(.*)/s);
  const name = t('kinds')[head] || head;
  if (head === 'early_warning' || head === 'forecast') return `${name} → ${t('levels')[tail] || tail}`;
  return tail ? `${name} ${tail}` : name;
}

async function loadAlerts(id) {
  let rows;
  try {
    rows = (await api(`/api/v1/alerts?space=${encodeURIComponent(id)}&limit=50`)).alerts;
  } catch (e) {
    if (e instanceof Unauthorized) return logout(true);
    return $('alerts').replaceChildren(el('p', { class: 'error' }, e.message));
  }
  if (S.view?.area !== id) return;
  if (!rows.length) return $('alerts').replaceChildren(el('p', { class: 'empty' }, t('no_alerts')));
  const time = (ts) => new Date(ts).toLocaleString(S.lang === 'zh' ? 'zh-CN' : 'en-GB', { month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  $('alerts').replaceChildren(el('table', {},
    el('tr', {}, el('th', {}, t('kind')), el('th', {}, t('severity')), el('th', {}, t('state')), el('th', { class: 'hide-narrow' }, t('since')), el('th', {}, '')),
    rows.map((a) => {
      const msg = S.lang === 'zh' ? a.details?.message_zh : a.details?.message_en;
      const state = a.state === 'acknowledged' && a.acknowledged_by ? t('acked_by')(a.acknowledged_by) : t('states')[a.state] || a.state;
      const btn = a.state === 'firing'
        ? el('button', { type: 'button', class: 'ack', onclick: (e) => acknowledge(a.id, e.target) }, t('ack'))
        : null;
      return el('tr', { 'data-alert-id': a.id, 'data-state': a.state },
        el('td', {}, kindText(a.kind), a.level ? ` · ${t('levels')[a.level] || a.level}` : '', msg ? el('div', { class: 'msg' }, msg) : null),
        el('td', { class: `sev sev-${a.severity}` }, t('severities')[a.severity] || a.severity),
        el('td', { class: `state state-${a.state}` }, state),
        el('td', { class: 'hide-narrow' }, time(a.started_at)),
        el('td', {}, btn));
    })));
}

async function acknowledge(id, button) {
  button.disabled = true;
  try {
    await api(`/api/v1/alerts/${id}/ack`, { method: 'POST', body: JSON.stringify({ comment: '' }) });
  } catch (e) {
    if (e instanceof Unauthorized) return logout(true);
    button.disabled = false;
    button.title = e.message;
    button.textContent = `${t('ack')} ✗`;
    return;
  }
  if (S.view?.area) loadAlerts(S.view.area);
}

async function loadDevices(id) {
  let d;
  try {
    d = await api(`/api/v1/spaces/${encodeURIComponent(id)}`);
  } catch (e) {
    return;
  }
  if (S.view?.area !== id) return;
  if (!d.devices.length) return $('devices').replaceChildren(el('p', { class: 'empty' }, t('none')));
  $('devices').replaceChildren(el('table', {},
    el('tr', {}, el('th', {}, t('device')), el('th', {}, t('online')), el('th', {}, t('missing')), el('th', {}, t('last'))),
    d.devices.map((v) => el('tr', {},
      el('td', {}, v.id),
      el('td', { class: v.online === false ? 'bad' : 'ok' }, v.online == null ? '–' : t(v.online ? 'yes' : 'no')),
      el('td', { class: `num ${v.missing_reports ? 'bad' : ''}` }, fmt(v.missing_reports)),
      el('td', {}, ago(v.last_received))))));
}

// Timed entry (分时预约): the sales signal and each slot's places; hidden where none is sold.
async function loadSlots(id) {
  let a, d;
  try {
    [a, d] = await Promise.all([
      api(`/api/v1/spaces/${encodeURIComponent(id)}/admission`),
      api(`/api/v1/spaces/${encodeURIComponent(id)}/slots`),
    ]);
  } catch (e) {
    if (S.view?.area === id) $('slots-panel').hidden = true;
    return;
  }
  if (S.view?.area !== id) return;
  $('slots-panel').hidden = false;
  const reasons = a.reasons.length ? ` (${a.reasons.join(', ')})` : '';
  $('sales').className = `sales sales-${a.sales}`;
  $('sales').textContent = `${t('sales')[a.sales] || a.sales}${reasons}${a.stale ? ` · ${t('stale_bookings')}` : ''}`;
  $('slots').replaceChildren(el('table', {},
    el('tr', {}, el('th', {}, t('slot')), el('th', {}, t('remaining')), el('th', {}, t('sold')),
      el('th', {}, t('checked_in')), el('th', {}, t('expected'))),
    d.slots.map((s) => el('tr', { 'data-slot': s.slot },
      el('td', {}, s.slot),
      el('td', { class: `num ${s.remaining ? '' : 'bad'}` },
        s.remaining ? `${fmt(s.remaining)} / ${fmt(s.quota)}` : t('slot_full'),
        s.oversold ? ` · ${t('oversold')(fmt(s.oversold))}` : ''),
      el('td', { class: 'num' }, fmt(s.sold)),
      el('td', { class: 'num' }, fmt(s.checked_in)),
      el('td', { class: 'num' }, fmt(s.expected))))));
}

// An operator's hold on the area's ticket sales, and its release (`…/admission/pause|resume`).
function showSalesResult(text, cls) {
  const p = $('sales-result');
  p.hidden = false;
  p.className = `recount-result ${cls}`;
  p.textContent = text;
}

async function holdSales(pause) {
  const id = S.view?.area;
  if (!id) return;
  const reason = $('sales-reason').value.trim();
  if (pause && !reason) return showSalesResult(t('sales_need_reason'), 'error');
  try {
    await api(`/api/v1/spaces/${encodeURIComponent(id)}/admission/${pause ? 'pause' : 'resume'}`, {
      method: 'POST', body: pause ? JSON.stringify({ reason }) : undefined,
    });
  } catch (err) {
    if (err instanceof Unauthorized) return logout(true);
    // 403 (not this token's area), 404, 422: the server's reason.
    return showSalesResult(err.message, 'error');
  }
  showSalesResult(t(pause ? 'sales_held' : 'sales_released'), 'ok');
  if (pause) $('sales-reason').value = '';
  // The signal changes at the next evaluation: look again shortly, and once more.
  for (const ms of [800, 2500]) setTimeout(() => { if (S.view?.area === id) loadSlots(id); }, ms);
}

async function loadCurve(id) {
  const start = new Date();
  start.setHours(0, 0, 0, 0);
  let r;
  try {
    r = await api(`/api/v1/spaces/${encodeURIComponent(id)}/series?step=1m&from=${encodeURIComponent(start.toISOString())}`);
  } catch (e) {
    return;
  }
  if (S.view?.area !== id) return;
  const s = S.spaces.get(id);
  const cap = s?.status?.instant.effective_capacity ?? s?.instant_capacity;
  const pts = occupancyOf(r.points, s?.occupancy ?? 0);
  const W = 1000, H = 260, L = 48, B = 22;
  const box = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none' });
  const t0 = start.getTime(), t1 = t0 + 24 * 3600e3;
  const top = Math.max(cap || 0, ...pts.map((p) => p.v), 10) * 1.08;
  const x = (tt) => L + ((tt - t0) / (t1 - t0)) * (W - L - 6);
  const y = (v) => H - B - (v / top) * (H - B - 8);
  box.append(svg('line', { class: 'axis', x1: L, x2: W, y1: H - B, y2: H - B }));
  for (let h = 0; h <= 24; h += 3) {
    const tx = svg('text', { x: x(t0 + h * 3600e3) - 8, y: H - 6 });
    tx.textContent = `${String(h).padStart(2, '0')}:00`;
    box.append(tx);
  }
  const step = niceStep(top / 4);
  for (let v = 0; v < top; v += step) {
    const tx = svg('text', { x: 2, y: y(v) + 4 });
    tx.textContent = fmt(v);
    box.append(tx);
  }
  if (cap) {
    box.append(svg('line', { class: 'cap', x1: L, x2: W, y1: y(cap), y2: y(cap) }));
    box.append(svg('line', { class: 'warn', x1: L, x2: W, y1: y(cap * 0.8), y2: y(cap * 0.8) }));
  }
  if (pts.length > 1) {
    box.append(svg('path', { class: 'line', d: pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join('') }));
  }
  $('curve').replaceChildren(box);
}

// ---- tomorrow's forecast against today ----

async function loadForecast(id) {
  const panel = $('forecast-panel');
  const start = new Date();
  start.setHours(0, 0, 0, 0);
  let f, today;
  try {
    [f, today] = await Promise.all([
      api(`/api/v1/spaces/${encodeURIComponent(id)}/forecast?days=1`),
      api(`/api/v1/spaces/${encodeURIComponent(id)}/series?step=1h&from=${encodeURIComponent(start.toISOString())}`),
    ]);
  } catch (e) {
    // Zones and car parks have no forecast of their own.
    if (S.view?.area === id) panel.hidden = true;
    return;
  }
  if (S.view?.area !== id) return;
  panel.hidden = false;
  const day = f.days?.[0];
  if (!day) {
    $('forecast-summary').textContent = t('fc_none');
    $('forecast-curve').replaceChildren();
    return;
  }
  const hours = day.hours.map((h) => h.occupancy);
  const peakAt = hours.reduce((best, h, i) => (h.mean > hours[best].mean ? i : best), 0);
  const label = `${day.date}${day.holiday ? `（${day.holiday}）` : ''}`;
  $('forecast-summary').textContent = t('fc_summary')(label, fmt(Math.round(day.entries.mean)),
    fmt(Math.round(day.entries.lo80)), fmt(Math.round(day.entries.hi80)), fmt(Math.round(day.peak_occupancy.mean)),
    day.hours[peakAt].load_pct != null ? Math.round(day.hours[peakAt].load_pct) : null, `${String(peakAt).padStart(2, '0')}:00`);
  // Today's highest occupancy per hour from the hourly series (peak, else occupancy).
  const counted = new Array(24).fill(null);
  for (const p of today.points) {
    const h = new Date(p.bucket).getHours();
    counted[h] = p.peak ?? p.occupancy;
  }
  const cap = f.instant_capacity;
  const W = 1000, H = 260, L = 48, B = 22;
  const box = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none' });
  const top = Math.max(cap || 0, ...hours.map((h) => h.hi80), ...counted.filter((v) => v != null), 10) * 1.08;
  const x = (h) => L + (h / 23) * (W - L - 6);
  const y = (v) => H - B - (Math.max(0, v) / top) * (H - B - 8);
  box.append(svg('line', { class: 'axis', x1: L, x2: W, y1: H - B, y2: H - B }));
  for (let h = 0; h < 24; h += 3) {
    const tx = svg('text', { x: x(h) - 8, y: H - 6 });
    tx.textContent = `${String(h).padStart(2, '0')}:00`;
    box.append(tx);
  }
  const step = niceStep(top / 4);
  for (let v = 0; v < top; v += step) {
    const tx = svg('text', { x: 2, y: y(v) + 4 });
    tx.textContent = fmt(v);
    box.append(tx);
  }
  if (cap) {
    box.append(svg('line', { class: 'cap', x1: L, x2: W, y1: y(cap), y2: y(cap) }));
    box.append(svg('line', { class: 'warn', x1: L, x2: W, y1: y(cap * 0.8), y2: y(cap * 0.8) }));
  }
  const upper = hours.map((b, h) => `${x(h).toFixed(1)},${y(b.hi80).toFixed(1)}`);
  const lower = hours.map((b, h) => `${x(h).toFixed(1)},${y(b.lo80).toFixed(1)}`).reverse();
  box.append(svg('polygon', { class: 'band', points: upper.concat(lower).join(' ') }));
  box.append(svg('path', { class: 'forecast', d: hours.map((b, h) => `${h ? 'L' : 'M'}${x(h).toFixed(1)},${y(b.mean).toFixed(1)}`).join('') }));
  const seen = counted.map((v, h) => [h, v]).filter(([, v]) => v != null);
  if (seen.length > 1) {
    box.append(svg('path', { class: 'line', d: seen.map(([h, v], i) => `${i ? 'L' : 'M'}${x(h).toFixed(1)},${y(v).toFixed(1)}`).join('') }));
  }
  const legend = el('p', { class: 'legend' },
    el('span', { class: 'k-today' }, t('fc_today')), ' ',
    el('span', { class: 'k-forecast' }, t('fc_tomorrow')), ' ',
    el('span', { class: 'k-band' }, t('fc_band')));
  $('forecast-curve').replaceChildren(box, legend);
}

// ---- head counts by hand ----

const signed = (d) => (d == null ? '–' : d > 0 ? `+${fmt(d)}` : d < 0 ? `−${fmt(-d)}` : '±0');

// The area and its parts: what a recount from this view can count.
function renderRecountTargets() {
  const box = $('recount-space');
  const keep = box.value;
  const area = S.spaces.get(S.view.area);
  if (!area) return;
  const targets = [area, ...S.order.map((id) => S.spaces.get(id)).filter((c) => c.parent === area.id)];
  box.replaceChildren(...targets.map((c) => el('option', { value: c.id },
    `${nameOf(c)} · ${t('space_kinds')[c.kind] || c.kind}`)));
  box.value = targets.some((c) => c.id === keep) ? keep : area.id;
}

function showRecount(text, cls) {
  const p = $('recount-result');
  p.hidden = false;
  p.className = `recount-result ${cls}`;
  p.textContent = text;
}

async function submitRecount(e) {
  e.preventDefault();
  const space = $('recount-space').value;
  const raw = $('recount-inside').value.trim();
  const reason = $('recount-reason').value.trim();
  if (!/^\d+$/.test(raw) || Number(raw) > 10000000) return showRecount(t('recount_bad_inside'), 'error');
  if (!reason) return showRecount(t('recount_need_reason'), 'error');
  const button = $('recount-submit');
  button.disabled = true;
  showRecount(t('recount_sending'), 'pending');
  let r;
  try {
    r = await api(`/api/v1/spaces/${encodeURIComponent(space)}/recount`, {
      method: 'POST', body: JSON.stringify({ inside: Number(raw), reason }),
    });
  } catch (err) {
    button.disabled = false;
    if (err instanceof Unauthorized) return logout(true);
    // 403 (not this token's space), 404, 422: the server's reason.
    return showRecount(err.message, 'error');
  }
  button.disabled = false;
  if (r.applied_at) {
    showRecount(t('recount_applied')(fmt(r.before), fmt(r.inside), signed(r.delta)), 'ok');
    $('recount-inside').value = '';
    $('recount-reason').value = '';
  } else {
    showRecount(t('recount_pending')(r.id), 'pending');
    // The ingester applies it with its next batch: look again shortly.
    setTimeout(() => { if ($('recount-space').value === space) loadRecounts(space); }, 5000);
  }
  loadRecounts(space);
  if (S.view?.area) loadCurve(S.view.area);
}

async function loadRecounts(id) {
  let r;
  try {
    r = await api(`/api/v1/spaces/${encodeURIComponent(id)}/recounts?limit=10`);
  } catch (e) {
    if (e instanceof Unauthorized) return logout(true);
    return $('recounts').replaceChildren(el('p', { class: 'error' }, e.message));
  }
  if (!S.view || $('recount-space').value !== id) return;
  if (!r.recounts.length) return $('recounts').replaceChildren(el('p', { class: 'empty' }, t('no_recounts')));
  const time = (ts) => new Date(ts).toLocaleString(S.lang === 'zh' ? 'zh-CN' : 'en-GB', { month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  $('recounts').replaceChildren(el('table', {},
    el('tr', {}, el('th', {}, t('at')), el('th', { class: 'num' }, t('counted')), el('th', {}, t('correction')),
      el('th', {}, t('recount_reason')), el('th', { class: 'hide-narrow' }, t('by'))),
    r.recounts.map((x) => el('tr', { 'data-recount-id': x.id, class: x.applied_at ? 'applied' : 'pending' },
      el('td', {}, time(x.applied_at || x.requested_at)),
      el('td', { class: 'num' }, fmt(x.inside)),
      el('td', {}, x.applied_at
        ? el('span', { class: x.delta > 0 ? 'delta-up' : x.delta < 0 ? 'delta-down' : '' },
          `${fmt(x.before)} → ${fmt(x.inside)} (${signed(x.delta)})`)
        : t('pending')),
      el('td', {}, x.reason),
      el('td', { class: 'hide-narrow' }, x.actor)))));
}

// 1, 2 or 5 times a power of ten, at least `x`: round axis labels.
function niceStep(x) {
  const p = 10 ** Math.floor(Math.log10(Math.max(x, 1)));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= x);
}

function route() {
  const m = location.hash.match(/^#\/area\/(.+)$/);
  S.view = m ? { area: decodeURIComponent(m[1]) } : null;
  if (!token()) return;
  render();
  if (S.view) {
    $('alerts').replaceChildren();
    $('devices').replaceChildren();
    $('curve').replaceChildren();
    loadAlerts(S.view.area);
    loadDevices(S.view.area);
    loadCurve(S.view.area);
    loadForecast(S.view.area);
    loadSlots(S.view.area);
    $('recount-result').hidden = true;
    $('recounts').replaceChildren();
    if (S.spaces.has(S.view.area)) loadRecounts($('recount-space').value);
  }
  window.scrollTo(0, 0);
}

// ---- session ----

function applyLang() {
  document.documentElement.lang = S.lang === 'zh' ? 'zh-CN' : 'en';
  document.title = `${t('title')} · visitorflow`;
  for (const n of document.querySelectorAll('[data-i18n]')) n.textContent = t(n.dataset.i18n);
  for (const n of document.querySelectorAll('[data-i18n-ph]')) n.placeholder = t(n.dataset.i18nPh);
  $('lang').textContent = S.lang === 'zh' ? 'EN' : '中文';
  setLive($('live').dataset.state);
  render();
  if (S.view) {
    loadAlerts(S.view.area);
    if (S.spaces.has(S.view.area)) loadRecounts($('recount-space').value);
  }
}

function logout(expired) {
  sessionStorage.removeItem('vf-token');
  if (S.stream) S.stream.abort();
  S.stream = null;
  S.lastEventId = null;
  S.spaces.clear();
  S.dispatch.clear();
  setLive('off');
  $('overview').hidden = true;
  $('detail').hidden = true;
  $('county').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').hidden = !expired;
  $('login-error').textContent = t('bad_token');
}

async function start() {
  $('login').hidden = true;
  $('logout').hidden = false;
  try {
    setSpaces(await api('/api/v1/spaces'));
  } catch (e) {
    return logout(e instanceof Unauthorized);
  }
  route();
  connectLive();
  loadSparks();
  loadDispatch();
}

function tick() {
  const now = new Date();
  $('clock').textContent = now.toLocaleTimeString(S.lang === 'zh' ? 'zh-CN' : 'en-GB', { hour12: false });
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem('vf-token', $('token').value.trim());
    $('token').value = '';
    start();
  });
  $('logout').addEventListener('click', () => logout(false));
  $('recount-form').addEventListener('submit', submitRecount);
  $('sales-form').addEventListener('submit', (e) => { e.preventDefault(); holdSales(true); });
  $('sales-resume').addEventListener('click', () => holdSales(false));
  $('recount-space').addEventListener('change', () => {
    $('recount-result').hidden = true;
    loadRecounts($('recount-space').value);
  });
  $('lang').addEventListener('click', () => {
    S.lang = S.lang === 'zh' ? 'en' : 'zh';
    localStorage.setItem('vf-lang', S.lang);
    applyLang();
  });
  window.addEventListener('hashchange', route);
  applyLang();
  tick();
  setInterval(tick, 1000);
  // Sparklines from the store once a minute; the live feed moves their last point meanwhile.
  setInterval(() => { if (token() && S.spaces.size) loadSparks(); }, 60000);
  // Slots fill as tickets sell: refresh the open area's every 30 s.
  setInterval(() => { if (token() && S.view?.area) loadSlots(S.view.area); }, 30000);
  if (token()) start();
  else logout(false);
});
