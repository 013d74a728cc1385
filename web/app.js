// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// caelumd dashboard: polls the REST API, follows /api/v1/events/stream (SSE), draws the
// violations timeline with uPlot. No framework, no inline anything (the CSP forbids it):
// every node is built with createElement and filled through textContent, never innerHTML.
'use strict';

(() => {
	const POLL_MS = 5000; // status, services, port map, resources
	const TIMELINE_MS = 30000; // the authoritative per-minute counts
	const FEED_MAX = 500; // rows kept in the live feed
	const FEED_BACKLOG = 200; // events asked for when the stream first opens
	const CELL_CAP = 1024; // port cells drawn per managed range
	const COMPACT_OVER = 256; // ranges larger than this get unlabeled cells
	const TOKEN_KEY = 'caelum.token';
	const CHART_TYPES = [
		'bind_denied',
		'device_denied',
		'task_budget_exceeded',
		'db_connect_denied',
		'db_conn_limit',
	];
	const CHART_COLORS = {
		bind_denied: '#f2495c',
		device_denied: '#b877d9',
		task_budget_exceeded: '#f08c3a',
		db_connect_denied: '#5794f2',
		db_conn_limit: '#e5b73b',
	};
	const KNOWN_TYPES = CHART_TYPES.concat([
		'cpu_over_allocation',
		'port_reserved',
		'port_released',
		'service_applied',
		'service_deleted',
		'service_started',
		'service_stopped',
		'policy_applied',
		'health_changed',
		'credential_drift',
		'db_unreachable',
		'db_recovered',
		'db_address_changed',
		'db_resolve_failed',
		'integrity_repaired',
		'verification_failed',
	]);

	// ---- DOM helpers ----

	const $ = (id) => document.getElementById(id);

	// h('td', {class: 'x', text: 'y', dataset: {port: 1}, title: 't'}, child, ...)
	function h(tag, props, ...kids) {
		const e = document.createElement(tag);
		for (const [k, v] of Object.entries(props || {})) {
			if (v === undefined || v === null || v === false) continue;
			if (k === 'class') e.className = v;
			else if (k === 'text') e.textContent = v;
			else if (k === 'dataset') setData(e, v);
			else if (k === 'style') Object.assign(e.style, v);
			else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
			else e.setAttribute(k, v === true ? '' : String(v));
		}
		for (const c of kids.flat())
			if (c !== null && c !== undefined && c !== false)
				e.append(c instanceof Node ? c : String(c));
		return e;
	}

	function setData(e, obj) {
		for (const [k, v] of Object.entries(obj)) {
			if (v === null || v === undefined) delete e.dataset[k];
			else if (e.dataset[k] !== String(v)) e.dataset[k] = String(v);
		}
	}

	function setText(e, text) {
		if (e.textContent !== text) e.textContent = text;
	}

	// One color per service, the same in every panel: a distinct palette (no reds: red means
	// denied) by rank among the known names, an FNV-1a hue past its end.
	const PALETTE = [
		'#3274d9',
		'#1f9e89',
		'#8f3bb8',
		'#56a64b',
		'#c4762b',
		'#6d5ae0',
		'#2f8fb3',
		'#9c7a17',
		'#b35ca3',
		'#4e8f6b',
		'#5b6fa8',
		'#7f8c23',
	];
	let svcRank = new Map();

	function rankServices(names) {
		svcRank = new Map([...new Set(names)].sort().map((n, i) => [n, i]));
	}

	function svcColor(name) {
		const i = svcRank.get(name);
		if (i !== undefined && i < PALETTE.length) return PALETTE[i];
		let x = 2166136261;
		for (let k = 0; k < name.length; k++)
			x = Math.imul(x ^ name.charCodeAt(k), 16777619);
		return `hsl(${((x >>> 0) % 300) + 30} 45% 42%)`;
	}

	function swatch(name) {
		return h('span', {class: 'sw', style: {background: svcColor(name)}});
	}

	// ---- formatting ----

	// RFC 3339 with nanoseconds: Date.parse wants at most milliseconds.
	function parseTime(s) {
		if (!s) return NaN;
		return Date.parse(String(s).replace(/(\.\d{3})\d+/, '$1'));
	}

	function clock(ms) {
		const d = new Date(ms);
		const p = (n) => String(n).padStart(2, '0');
		return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
	}

	function ago(ms) {
		const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
		return s < 60
			? `${s}s ago`
			: s < 3600
				? `${Math.floor(s / 60)}m ago`
				: `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
	}

	function duration(s) {
		if (s < 60) return `${s}s`;
		if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
		if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
		return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
	}

	function num(x, digits = 2) {
		if (x === null || x === undefined) return '—';
		return Number.isInteger(x) ? String(x) : x.toFixed(digits).replace(/\.?0+$/, '');
	}

	function mb(x) {
		return x >= 1024 ? `${num(x / 1024, 1)} GiB` : `${x} MiB`;
	}

	// ---- API ----

	class ApiError extends Error {
		constructor(status, message, errors) {
			super(message);
			this.status = status;
			this.errors = errors;
		}
	}

	const token = {
		get: () => sessionStorage.getItem(TOKEN_KEY) || '',
		set: (t) => {
			sessionStorage.setItem(TOKEN_KEY, t);
			showToken();
		},
		clear: () => {
			sessionStorage.removeItem(TOKEN_KEY);
			showToken();
		},
	};

	async function api(method, path, body) {
		const headers = {Accept: 'application/json'};
		const t = token.get();
		// Reads need no token on loopback; from elsewhere they do, so send it when we have one.
		if (t) headers.Authorization = `Bearer ${t}`;
		if (body !== undefined) headers['Content-Type'] = 'application/json';
		let res;
		try {
			res = await fetch(path, {
				method,
				headers,
				cache: 'no-store',
				body: body === undefined ? undefined : JSON.stringify(body),
			});
		} catch (e) {
			throw new ApiError(0, `caelumd is unreachable (${e.message})`);
		}
		const text = await res.text();
		let data = null;
		try {
			data = text ? JSON.parse(text) : null;
		} catch (e) {
			if (res.ok) throw new ApiError(res.status, `${path}: not JSON`);
		}
		if (!res.ok) {
			const err = data && data.error;
			throw new ApiError(
				res.status,
				err && err.message
					? err.message
					: `${method} ${path}: HTTP ${res.status}`,
				err && err.errors,
			);
		}
		return data;
	}

	// A change: asks for the token first when there is none, and again when it is refused.
	async function mutate(method, path, body) {
		if (!token.get() && !(await askToken("This change needs caelumd's API token.")))
			throw new ApiError(0, 'cancelled: no token given');
		try {
			return await api(method, path, body);
		} catch (e) {
			if (e.status !== 401) throw e;
			token.clear();
			if (!(await askToken(`The token was refused: ${e.message}`))) throw e;
			return api(method, path, body);
		}
	}

	// ---- token dialog ----

	let tokenResolve = null;

	function askToken(why) {
		const dlg = $('token-dialog');
		setText($('token-why'), why || '');
		$('token-why').dataset.tone = why ? 'bad' : '';
		$('token-input').value = token.get();
		if (!dlg.open) dlg.showModal();
		$('token-input').focus();
		return new Promise((resolve) => {
			if (tokenResolve) tokenResolve(false);
			tokenResolve = resolve;
		});
	}

	function closeToken(saved) {
		const dlg = $('token-dialog');
		if (dlg.open) dlg.close();
		if (tokenResolve) {
			const r = tokenResolve;
			tokenResolve = null;
			r(saved);
		}
	}

	function showToken() {
		const has = !!token.get();
		$('token-btn').dataset.hasToken = String(has);
		setText($('token-btn'), has ? 'Token set' : 'Set token');
	}

	function setupToken() {
		$('token-btn').addEventListener('click', () => askToken(''));
		$('token-form').addEventListener('submit', (ev) => {
			ev.preventDefault();
			const t = $('token-input').value.trim();
			if (!t) {
				setText($('token-why'), 'Enter the token, or Cancel.');
				$('token-why').dataset.tone = 'bad';
				return;
			}
			token.set(t);
			closeToken(true);
		});
		$('token-cancel').addEventListener('click', () => closeToken(false));
		$('token-forget').addEventListener('click', () => {
			token.clear();
			closeToken(false);
		});
		$('token-dialog').addEventListener('cancel', () => closeToken(false));
		showToken();
	}

	// ---- notices ----

	function errorLines(errors) {
		if (!Array.isArray(errors)) return [];
		return errors.map((x) =>
			typeof x === 'string'
				? x
				: x && x.message
					? x.path
						? `${x.path}: ${x.message}`
						: x.message
					: JSON.stringify(x),
		);
	}

	function toast(title, message, tone, errors) {
		const lines = errorLines(errors).filter((l) => l !== message);
		const t = h(
			'div',
			{class: 'toast', dataset: {tone: tone || 'ok'}, role: 'alert'},
			h('div', {class: 'title', text: title}),
			message ? h('div', {text: message}) : null,
			lines.length
				? h(
						'ul',
						null,
						lines.map((l) => h('li', {text: l})),
					)
				: null,
		);
		$('toasts').prepend(t);
		setTimeout(() => t.remove(), tone === 'bad' ? 12000 : 5000);
		t.addEventListener('click', () => t.remove());
	}

	function apiFailed(what, e) {
		toast(
			`${what} failed${e.status ? ` (HTTP ${e.status})` : ''}`,
			e.message,
			'bad',
			e.errors,
		);
	}

	function setConn(id, state, label, title) {
		const e = $(id);
		e.dataset.state = state;
		setText(e.querySelector('.label'), label);
		if (title !== undefined) e.title = title;
	}

	function banner(text) {
		const b = $('banner');
		b.hidden = !text;
		setText(b, text || '');
	}

	// ---- polling ----

	const S = {status: null, services: [], details: {}, map: null, resources: null};
	let refreshing = false,
		refreshAgain = false,
		refreshTimer = null;

	async function refresh() {
		if (refreshing) {
			refreshAgain = true;
			return;
		}
		refreshing = true;
		try {
			const [status, services, map, resources] = await Promise.all([
				api('GET', '/api/v1/status'),
				api('GET', '/api/v1/services'),
				api('GET', '/api/v1/ports/map'),
				api('GET', '/api/v1/resources'),
			]);
			Object.assign(S, {status, services, map, resources, details: {}});
			rankServices(
				services
					.map((s) => s.name)
					.concat(
						(map.ports || [])
							.map((e) => e.service)
							.filter(Boolean),
					),
			);
			// The list carries each service's health and denial counts.
			services.forEach((d) => {
				S.details[d.name] = d;
			});
			setConn('api-state', 'ok', 'api', 'REST API: ok');
			banner('');
			setText($('updated'), `updated ${clock(Date.now())}`);
			render();
			refreshCluster();
		} catch (e) {
			setConn('api-state', 'down', 'api down', e.message);
			banner(
				`Cannot read caelumd's API: ${e.message}. Showing the last data; retrying.`,
			);
			if (e.status === 401) {
				// Reading from a non-loopback address needs the token too.
				token.clear();
				askToken(e.message);
			}
		} finally {
			refreshing = false;
			if (refreshAgain) {
				refreshAgain = false;
				scheduleRefresh(200);
			}
		}
	}

	// Collapse bursts (a squatter retrying) into one refresh.
	function scheduleRefresh(delay) {
		if (refreshTimer) return;
		refreshTimer = setTimeout(() => {
			refreshTimer = null;
			refresh();
		}, delay);
	}

	// What each panel is drawn from: a panel whose inputs did not change is left alone (no
	// flicker, tooltips and selections survive the poll). Counters that move on their own
	// (run_cnt, cpu_time_ns, uptime) are left out.
	const panelInputs = {
		renderHeader: () => [
			S.status.host,
			S.status.version,
			S.status.mode,
			S.status.uptime_s,
		],
		renderComponents: () => [
			(S.status.components || []).map((c) => [
				c.name,
				c.mode,
				c.attached,
				c.enforcing,
				c.error,
				(c.programs || []).map((p) => p.name),
			]),
			S.status.verification,
			S.status.events,
			S.status.policy,
			S.status.http && S.status.http.event_streams,
		],
		renderResources: () => [
			S.resources && S.resources.dimensions,
			((S.resources && S.resources.services) || []).map((x) => [
				x.cpu_usage,
				x.live_tasks,
				x.bandwidth,
			]),
		],
		renderPortMap: () => [S.map, S.services.map((x) => x.name)],
		renderServices: () => [
			S.services,
			S.resources && S.resources.services,
			Object.values(S.details).map((d) => [
				d.name,
				d.health,
				d.recent_denials,
				d.processes,
				d.main_pid,
			]),
		],
	};
	const drawn = {};

	function render() {
		const steps = [
			renderHeader,
			renderComponents,
			renderResources,
			renderPortMap,
			renderServices,
		];
		for (const step of steps) {
			try {
				const key = JSON.stringify(panelInputs[step.name](), (k, v) =>
					k === 'cpu_time_ns' ||
					k === 'run_cnt' ||
					k === 'run_time_ns'
						? undefined
						: v,
				);
				if (drawn[step.name] === key) continue;
				step();
				drawn[step.name] = key;
			} catch (e) {
				// One panel failing on an unexpected shape must not blank the others.
				console.warn(`dashboard: ${step.name}:`, e);
			}
		}
	}

	// ---- header and enforcement ----

	function renderHeader() {
		const s = S.status;
		setText($('host'), s.host);
		setText($('version'), `caelumd ${s.version}`);
		setText($('mode'), s.mode);
		$('mode').dataset.mode = s.mode;
		setText($('uptime'), `up ${duration(s.uptime_s)}`);
		document.title = `Caelum · ${s.host}`;
	}

	function componentHealth(c, ver) {
		if (c.mode === 'off') return 'off';
		if (c.error || !c.attached || (ver && !ver.ok)) return 'bad';
		return c.mode === 'audit' || !c.enforcing ? 'warn' : 'ok';
	}

	function renderComponents() {
		const s = S.status;
		const v = s.verification || null;
		const vt = v ? parseTime(v.time) : NaN;
		const sum = $('verify-summary');
		if (!v || !v.time) {
			sum.dataset.ok = 'unknown';
			setText(sum, 'self-verification: not run yet');
		} else {
			sum.dataset.ok = String(!!v.ok);
			setText(
				sum,
				`self-verification ${v.ok ? '✓ passed' : '✗ FAILED'} at ${clock(vt)} (${ago(vt)})`,
			);
			sum.title = v.time;
		}
		const cards = (s.components || []).map((c) => {
			const ver = v && v.components ? v.components[c.name] : null;
			const progs = (c.programs || []).map((p) => p.name).join(' ');
			return h(
				'div',
				{
					class: 'card',
					dataset: {
						component: c.name,
						mode: c.mode,
						attached: String(!!c.attached),
						health: componentHealth(c, ver),
					},
				},
				h(
					'div',
					{class: 'row'},
					h('span', {class: 'name', text: c.name}),
					h('span', {class: 'spacer'}),
					h('span', {
						class: 'badge',
						dataset: {mode: c.mode},
						text: c.mode,
					}),
				),
				h(
					'div',
					{
						class: 'line',
						title: 'attachment as read back from the kernel (bpf link info)',
					},
					c.attached
						? h('span', {class: 'ok', text: '● attached'})
						: h('span', {
								class:
									c.mode === 'off'
										? ''
										: 'bad',
								text: '○ not attached',
							}),
					c.attached ? ' · kernel-verified' : '',
					c.mode !== 'off' && !c.enforcing ? ' · not enforcing' : '',
				),
				ver
					? h(
							'div',
							{class: 'line', title: ver.detail || ''},
							h('span', {
								class: ver.ok ? 'ok' : 'bad',
								text: ver.ok
									? '✓ verified'
									: '✗ verification failed',
							}),
							ver.detail ? ` · ${ver.detail}` : '',
						)
					: h('div', {
							class: 'line',
							text: 'no self-verification for this component',
						}),
				c.error
					? h(
							'div',
							{class: 'line'},
							h('span', {class: 'bad', text: c.error}),
						)
					: null,
				h('div', {
					class: 'line progs',
					title: progs,
					text: progs || 'no programs',
				}),
			);
		});
		$('component-cards').replaceChildren(...cards);

		const ev = s.events || {},
			pol = s.policy || {},
			lost = ev.lost || {};
		const lostTotal = Object.values(lost).reduce((a, b) => a + (Number(b) || 0), 0);
		const stat = (label, value, tone) =>
			h(
				'span',
				null,
				`${label} `,
				h('b', {text: String(value), dataset: tone ? {tone} : {}}),
			);
		$('stats').replaceChildren(
			stat('policy entries', pol.entries ?? '—'),
			stat('reserved', pol.reserved ?? '—'),
			stat('managed', pol.managed ?? '—'),
			stat('registry rev', pol.registry_revision ?? '—'),
			stat('events emitted', ev.emitted ?? '—'),
			stat('denied', ev.denied ?? '—'),
			stat('audited', ev.audited ?? '—'),
			stat('folded', ev.folded ?? '—'),
			stat('lost', lostTotal, lostTotal ? 'bad' : null),
			stat(
				'streams',
				s.http && s.http.event_streams !== undefined
					? s.http.event_streams
					: '—',
			),
		);
	}

	async function action(btn, what, method, path) {
		btn.disabled = true;
		try {
			const r = await mutate(method, path);
			const ok = r && r.ok === false ? 'bad' : 'ok';
			toast(
				`${what}: ${ok === 'ok' ? 'done' : 'reported problems'}`,
				r && typeof r === 'object' ? summarize(r) : '',
				ok,
			);
			scheduleRefresh(0);
		} catch (e) {
			apiFailed(what, e);
		} finally {
			btn.disabled = false;
		}
	}

	function summarize(r) {
		return Object.entries(r)
			.filter(([, v]) => v === null || typeof v !== 'object')
			.map(([k, v]) => `${k}: ${v}`)
			.join(' · ');
	}

	// ---- resources ----

	function bar(segs) {
		return h(
			'div',
			{class: 'bar'},
			segs
				.filter((s) => s.frac > 0)
				.map((s) =>
					h('div', {
						class: `seg ${s.cls}`,
						dataset: s.data || {},
						title: s.title,
						style: {
							width: `${Math.min(100, s.frac * 100).toFixed(2)}%`,
						},
					}),
				),
		);
	}

	function level(frac) {
		return frac >= 0.999 ? 'full' : frac >= 0.85 ? 'high' : 'ok';
	}

	function resourceRow(label, d, fmt, extra) {
		const cap = d.capacity || 0;
		const allocatable = d.allocatable ?? cap - (d.reserved || 0);
		const frac = (x) => (cap > 0 ? x / cap : 0);
		return h(
			'div',
			{class: 'res', dataset: {dimension: label}},
			h(
				'div',
				{class: 'top'},
				h('span', {class: 'dim', text: label}),
				h(
					'span',
					{class: 'val'},
					h('b', {text: fmt(d.allocated || 0)}),
					` / ${fmt(allocatable)}`,
					` · ${fmt(d.free ?? allocatable - (d.allocated || 0))} free`,
				),
			),
			bar([
				{
					cls: 'sys',
					frac: frac(d.reserved || 0),
					title: `reserved for the system: ${fmt(d.reserved || 0)}`,
				},
				{
					cls: 'alloc',
					frac: frac(d.allocated || 0),
					title: `allocated to services: ${fmt(d.allocated || 0)}`,
					data: {
						level: level(
							allocatable
								? (d.allocated || 0) / allocatable
								: 0,
						),
					},
				},
			]),
			extra || null,
			h('div', {
				class: 'foot',
				text:
					`capacity ${fmt(cap)}${d.reserved ? `, ${fmt(d.reserved)} kept for the system` : ''}` +
					`${d.detected === false ? ' (configured)' : ''} · ${d.enforcement || ''}`,
			}),
		);
	}

	function renderResources() {
		const r = S.resources;
		if (!r || !r.dimensions) {
			$('resource-bars').replaceChildren(
				h('div', {class: 'muted', text: 'no resource data'}),
			);
			return;
		}
		const dims = r.dimensions,
			out = [];
		const svcs = r.services || [];
		if (dims.cpus) {
			const used = svcs.reduce((a, s) => a + (s.cpu_usage || 0), 0);
			const cap = dims.cpus.capacity || 0;
			out.push(
				resourceRow(
					'cpus',
					dims.cpus,
					(x) => num(x),
					h(
						'div',
						{
							class: 'usebar',
							title: `CPU time used by services over the accounting window`,
						},
						h(
							'div',
							{class: 'bar thin'},
							h('div', {
								class: 'seg use',
								style: {
									width: `${cap ? Math.min(100, (used / cap) * 100) : 0}%`,
								},
							}),
						),
						h('span', {
							class: 'muted small',
							text: `${num(used)} in use`,
						}),
					),
				),
			);
		}
		if (dims.memory_mb) out.push(resourceRow('memory', dims.memory_mb, mb));
		if (dims.gpus && !dims.gpus.capacity) {
			out.push(
				h(
					'div',
					{class: 'res', dataset: {dimension: 'gpus'}},
					h(
						'div',
						{class: 'top'},
						h('span', {class: 'dim', text: 'gpus'}),
						h('span', {class: 'val', text: 'none configured'}),
					),
				),
			);
		} else if (dims.gpus) {
			const chips = (dims.gpus.gpus || []).map((g) =>
				h(
					'span',
					{
						class: 'chip',
						dataset: {free: String(!g.service), gpu: g.id},
						title: (g.devices || []).join(', '),
					},
					g.service ? swatch(g.service) : null,
					g.service ? `${g.id} → ${g.service}` : `${g.id} free`,
				),
			);
			out.push(
				resourceRow(
					'gpus',
					dims.gpus,
					(x) => num(x),
					chips.length ? h('div', {class: 'gpus'}, chips) : null,
				),
			);
		}
		if (dims.tasks) {
			const live = svcs.reduce((a, s) => a + (s.live_tasks || 0), 0);
			out.push(
				h(
					'div',
					{class: 'res', dataset: {dimension: 'tasks'}},
					h(
						'div',
						{class: 'top'},
						h('span', {class: 'dim', text: 'tasks'}),
						h(
							'span',
							{class: 'val'},
							h('b', {text: String(live)}),
							` live · ${dims.tasks.budgeted ?? 0} budgeted`,
						),
					),
					h('div', {
						class: 'foot',
						text: dims.tasks.enforcement || '',
					}),
				),
			);
		}
		// Bandwidth (issue 15): per direction, the reservations and each service's rate
		// measured over the last second from the kernel's counters.
		for (const [dim, dir] of [
			['egress_mbit', 'egress'],
			['ingress_mbit', 'ingress'],
		]) {
			const d = dims[dim];
			if (!d || (d.capacity == null && !d.allocated)) continue;
			const chips = svcs
				.filter((s) => s.bandwidth && s.bandwidth[dir].reserved_mbit)
				.map((s) => {
					const b = s.bandwidth[dir];
					const m = b.measured_mbit;
					return h(
						'span',
						{
							class: 'chip',
							title: `${b.dropped} dropped, ${b.signalled} signalled${b.over ? `, ${b.over} over (audit)` : ''}`,
						},
						swatch(s.name),
						`${s.name} ${m == null ? '—' : num(Math.round(m * 10) / 10)} / ${num(b.reserved_mbit)} Mbit/s`,
					);
				});
			out.push(
				resourceRow(
					dim,
					d,
					(x) => num(x),
					chips.length ? h('div', {class: 'gpus'}, chips) : null,
				),
			);
		}
		$('resource-bars').replaceChildren(...out);
	}

	// ---- port map ----

	let mapSig = '';
	let selected = null; // {port, proto}
	const cellsByPort = new Map(); // port -> [cell, ...] (a port may sit in two ranges)

	function protoMatch(rangeProto, proto) {
		return rangeProto === 'both' || rangeProto === proto;
	}

	function portInfo(entries) {
		const reserved = entries.filter((e) => e.service);
		const owners = [...new Set(reserved.map((e) => e.service))];
		const denials = entries.reduce((a, e) => a + (e.denials || 0), 0);
		const state = reserved.length ? 'reserved' : denials ? 'denied' : 'free';
		return {reserved, owners, denials, state};
	}

	function cellTitle(port, entries, info, rangeName) {
		const lines = [
			`${port}${rangeName ? `  (managed range ${rangeName})` : '  (outside managed ranges)'}`,
		];
		for (const e of info.reserved)
			lines.push(`${e.port}/${e.proto} reserved by ${e.service}`);
		if (!info.reserved.length)
			lines.push('free: nobody may bind it without a reservation');
		for (const e of entries)
			if (e.denials)
				lines.push(
					`${e.denials} denied bind${e.denials > 1 ? 's' : ''} on ${e.proto}` +
						(e.last_offender_service
							? `, last by service ${e.last_offender_service}`
							: e.last_offender_comm
								? `, last by ${e.last_offender_comm} (outside any service)`
								: ''),
				);
		return lines.join('\n');
	}

	function updateCell(cell, port, entries, rangeName) {
		const info = portInfo(entries);
		const before = Number(cell.dataset.denials || 0);
		setData(cell, {
			state: info.state,
			owner: info.owners.length ? info.owners.join(' ') : null,
			proto: info.reserved.length
				? [...new Set(info.reserved.map((e) => e.proto))].join(' ')
				: null,
			denials: info.denials,
			squatted: String(info.denials > 0),
		});
		cell.title = cellTitle(port, entries, info, rangeName);
		const bg =
			info.owners.length === 1
				? svcColor(info.owners[0])
				: info.owners.length > 1
					? `linear-gradient(135deg, ${svcColor(info.owners[0])} 50%, ${svcColor(info.owners[1])} 50%)`
					: '';
		if (cell.style.background !== bg) cell.style.background = bg;
		let badge = cell.querySelector('.n');
		if (info.denials) {
			if (!badge) badge = cell.appendChild(h('span', {class: 'n'}));
			setText(badge, info.denials > 999 ? '999+' : String(info.denials));
		} else if (badge) {
			badge.remove();
		}
		if (mapSig && info.denials > before) flash(cell);
	}

	function flash(cell) {
		cell.classList.remove('flash');
		void cell.offsetWidth; // restart the animation
		cell.classList.add('flash');
	}

	function makeCell(port, compact) {
		const cell = h('div', {class: 'cell', dataset: {port, state: 'free', denials: 0}});
		if (!compact) cell.append(String(port));
		if (!cellsByPort.has(port)) cellsByPort.set(port, []);
		cellsByPort.get(port).push(cell);
		return cell;
	}

	// beyond: per range, the reserved or squatted ports past the first CELL_CAP cells.
	function buildMap(ranges, outside, beyond) {
		cellsByPort.clear();
		const blocks = ranges.map((r, i) => {
			const size = r.hi - r.lo + 1;
			const shown = Math.min(size, CELL_CAP);
			const compact = shown > COMPACT_OVER;
			const cells = h('div', {class: `cells${compact ? ' compact' : ''}`});
			for (let p = r.lo; p < r.lo + shown; p++)
				cells.append(makeCell(p, compact));
			const more = beyond[i].length
				? h(
						'div',
						{class: 'beyond'},
						h('div', {
							class: 'sum',
							text: `and past the first ${shown}: ${beyond[i].length} more reserved or squatted port${beyond[i].length > 1 ? 's' : ''}`,
						}),
						h(
							'div',
							{class: 'cells'},
							beyond[i].map((p) => makeCell(p, false)),
						),
					)
				: null;
			return h(
				'div',
				{class: 'range', dataset: {range: r.range}},
				h(
					'div',
					{class: 'range-head'},
					h('span', {class: 'name', text: r.range}),
					h('span', {
						class: 'badge',
						text: r.proto === 'both' ? 'tcp+udp' : r.proto,
					}),
					h('span', {class: 'sum'}),
					shown < size
						? h('span', {
								class: 'cap',
								text: `showing the first ${shown} of ${size} ports (${r.lo}-${r.lo + shown - 1})`,
							})
						: null,
				),
				cells,
				more,
			);
		});
		if (outside.length) {
			const cells = h('div', {class: 'cells'});
			outside.forEach((p) => cells.append(makeCell(p, false)));
			blocks.push(
				h(
					'div',
					{class: 'range outside', dataset: {range: 'outside'}},
					h(
						'div',
						{class: 'range-head'},
						h('span', {
							class: 'name',
							text: 'outside managed ranges',
						}),
						h('span', {
							class: 'sum',
							text: 'reserved ports (and denied binds on them) not in any managed range',
						}),
					),
					cells,
				),
			);
		}
		if (!blocks.length)
			blocks.push(
				h('div', {
					class: 'muted',
					text: 'no managed ranges and no reservations',
				}),
			);
		$('port-map').replaceChildren(...blocks);
	}

	function renderPortMap() {
		const m = S.map;
		const ranges = m.ranges || [];
		const byPort = new Map();
		for (const e of m.ports || []) {
			if (!byPort.has(e.port)) byPort.set(e.port, []);
			byPort.get(e.port).push(e);
		}
		const inRange = (port, proto) =>
			ranges.some(
				(r) => port >= r.lo && port <= r.hi && protoMatch(r.proto, proto),
			);
		const outside = [
			...new Set(
				(m.ports || [])
					.filter((e) => !inRange(e.port, e.proto))
					.map((e) => e.port),
			),
		].sort((a, b) => a - b);
		const beyond = ranges.map((r) =>
			[
				...new Set(
					(m.ports || [])
						.filter(
							(e) =>
								e.port >= r.lo + CELL_CAP &&
								e.port <= r.hi &&
								protoMatch(r.proto, e.proto) &&
								(e.service || e.denials),
						)
						.map((e) => e.port),
				),
			].sort((a, b) => a - b),
		);
		const sig = JSON.stringify([ranges, outside, beyond]);
		if (sig !== mapSig) {
			mapSig = '';
			buildMap(ranges, outside, beyond);
		}
		document.querySelectorAll('#port-map .range').forEach((block) => {
			const name = block.dataset.range;
			const r = ranges.find((x) => x.range === name);
			let nres = 0,
				nsq = 0,
				ncells = 0;
			block.querySelectorAll('.cell').forEach((cell) => {
				const port = Number(cell.dataset.port);
				const entries = (byPort.get(port) || []).filter((e) =>
					r
						? protoMatch(r.proto, e.proto)
						: !inRange(e.port, e.proto),
				);
				updateCell(cell, port, entries, r ? r.range : null);
				ncells++;
				if (cell.dataset.state === 'reserved') nres++;
				if (cell.dataset.state === 'denied') nsq++;
			});
			const sum = block.querySelector('.range-head .sum');
			if (r && sum) {
				// Reserved and squatted ports are all drawn (past the cap too): the rest is free.
				const free = r.hi - r.lo + 1 - nres - nsq;
				setText(
					sum,
					`${nres} reserved · ${free} free · ${nsq} unreserved with denied binds`,
				);
			}
		});
		mapSig = sig;
		markSelected();
		setText(
			$('ports-sub'),
			`${m.managed_ports ?? '—'} managed ports, ${(m.ports || []).filter((e) => e.service).length} reservations`,
		);
		renderLegend();
	}

	function renderLegend() {
		const owners = [
			...new Set(
				(S.map.ports || []).filter((e) => e.service).map((e) => e.service),
			),
		].sort();
		const item = (sw, label) => h('span', {class: 'item'}, sw, label);
		$('port-legend').replaceChildren(
			...owners.map((o) =>
				item(h('span', {class: 'sw', style: {background: svcColor(o)}}), o),
			),
			item(h('span', {class: 'sw free'}), 'free'),
			item(h('span', {class: 'sw squat'}), 'reserved, squat attempts'),
			item(h('span', {class: 'sw denied'}), 'unreserved, denied binds (count)'),
		);
	}

	function markSelected() {
		document.querySelectorAll('#port-map .cell[data-selected]').forEach(
			(c) => delete c.dataset.selected,
		);
		if (selected)
			(cellsByPort.get(selected) || []).forEach((c) => {
				c.dataset.selected = 'true';
			});
	}

	// ---- port form ----

	function fillServices() {
		const sel = $('pf-service');
		const names = S.services.map((s) => s.name);
		const cur = sel.value;
		const have = [...sel.options].map((o) => o.value);
		if (JSON.stringify(have) !== JSON.stringify(names)) {
			sel.replaceChildren(...names.map((n) => h('option', {value: n, text: n})));
			if (names.includes(cur)) sel.value = cur;
		}
	}

	function formMsg(text, tone) {
		setText($('pf-msg'), text);
		$('pf-msg').dataset.tone = tone || '';
	}

	let releaseTimer = null;

	function disarmRelease() {
		const b = $('pf-release');
		delete b.dataset.confirm;
		setText(b, 'Release');
	}

	function setupPortForm() {
		$('port-map').addEventListener('click', (ev) => {
			const cell = ev.target.closest('.cell');
			if (!cell) return;
			const port = Number(cell.dataset.port);
			selected = port;
			$('pf-port').value = String(port);
			const proto = (cell.dataset.proto || '').split(' ')[0];
			if (proto) $('pf-proto').value = proto;
			const owner = (cell.dataset.owner || '').split(' ')[0];
			if (owner && [...$('pf-service').options].some((o) => o.value === owner))
				$('pf-service').value = owner;
			disarmRelease();
			formMsg(cell.title.split('\n').slice(1).join(' · '), '');
			markSelected();
		});
		$('pf-port').addEventListener('input', () => {
			selected = Number($('pf-port').value) || null;
			disarmRelease();
			markSelected();
		});
		$('port-form').addEventListener('submit', async (ev) => {
			ev.preventDefault();
			const port = Number($('pf-port').value);
			if (!port) {
				formMsg(
					'enter a port (or click a cell), or use "Allocate free"',
					'bad',
				);
				return;
			}
			await portChange($('pf-reserve'), 'reserve', 'POST', '/api/v1/ports', {
				port,
				proto: $('pf-proto').value,
				service: $('pf-service').value,
			});
		});
		$('pf-alloc').addEventListener('click', () =>
			portChange($('pf-alloc'), 'allocate', 'POST', '/api/v1/ports', {
				service: $('pf-service').value,
				proto: $('pf-proto').value,
			}),
		);
		$('pf-release').addEventListener('click', async () => {
			const b = $('pf-release');
			const port = Number($('pf-port').value);
			if (!port) {
				formMsg('enter or click the port to release', 'bad');
				return;
			}
			// Two clicks: a release takes the port from its owner (in a managed range nobody
			// may bind it afterwards; outside one, anybody may).
			if (b.dataset.confirm !== 'true') {
				b.dataset.confirm = 'true';
				setText(b, `Release ${port}/${$('pf-proto').value}?`);
				clearTimeout(releaseTimer);
				releaseTimer = setTimeout(disarmRelease, 4000);
				return;
			}
			disarmRelease();
			await portChange(
				b,
				'release',
				'DELETE',
				`/api/v1/ports/${port}/${$('pf-proto').value}`,
			);
		});
	}

	async function portChange(btn, what, method, path, body) {
		if (!S.services.length && what !== 'release') {
			formMsg('no services: apply a service first', 'bad');
			return;
		}
		btn.disabled = true;
		formMsg(`${what}…`, '');
		try {
			const r = await mutate(method, path, body);
			const done =
				what === 'release'
					? `released ${r.port}/${r.proto}${r.service ? ` (was ${r.service})` : ''}`
					: `reserved ${r.port}/${r.proto} for ${r.service}`;
			formMsg(done, 'ok');
			toast(done, '', 'ok');
			selected = r.port;
			$('pf-port').value = String(r.port);
			scheduleRefresh(0);
		} catch (e) {
			formMsg(e.message, 'bad');
			apiFailed(`port ${what}`, e);
		} finally {
			btn.disabled = false;
		}
	}

	// ---- services ----

	function chipsCell(items) {
		return h('td', null, h('div', {class: 'chips'}, items));
	}

	function healthCell(s, hl) {
		// Without a declared check the daemon still says "unknown": show that as none.
		const state = !s.health ? 'none' : (hl && hl.state) || 'unknown';
		let title = 'no health check declared';
		if (s.health)
			title =
				`${s.health.http || s.health.tcp || ''}: ${(hl && hl.detail) || ''}` +
				(hl && hl.since ? ` (since ${hl.since})` : '');
		return h('td', {
			class: 'health',
			dataset: {health: state},
			title,
			text: state === 'none' ? '—' : state,
		});
	}

	function cpuCell(r, reserved) {
		const used = r.cpu_usage || 0;
		const over = !!r.cpu_over_reservation || (reserved > 0 && used > reserved);
		const width = `${reserved ? Math.min(100, (used / reserved) * 100) : 0}%`;
		return h(
			'td',
			{
				title: `CPU usage over the last ${r.cpu_window_s || '?'} s vs reservation`,
			},
			h(
				'div',
				{class: 'usage'},
				reserved
					? h(
							'div',
							{class: 'bar'},
							h('div', {
								class: 'seg use',
								dataset: {over: String(over)},
								style: {width},
							}),
						)
					: null,
				h('span', {
					class: 'num',
					text: `${num(used)} / ${reserved ? num(reserved) : '—'}`,
				}),
			),
		);
	}

	function denialsCell(den) {
		const title = 'recent denials: caused by this service / against its reservations';
		if (!den) return h('td', {class: 'den num', title, text: '—'});
		return h(
			'td',
			{class: 'den num', title},
			h('span', {
				class: 'by',
				dataset: {n: den.by_service},
				text: String(den.by_service),
			}),
			' / ',
			h('span', {
				class: 'against',
				dataset: {n: den.against_service},
				text: String(den.against_service),
			}),
		);
	}

	// s: the list entry; d: GET /services/NAME; r: its line of GET /resources.
	function serviceRow(s, d, r) {
		const rv = r.reservation || s.resources || {};
		const health = healthCell(s, d.health || null);
		const gpus =
			r.gpus && r.gpus.length ? r.gpus : Array.isArray(rv.gpus) ? rv.gpus : [];
		const procs =
			d.processes !== undefined
				? `${d.processes} processes${d.main_pid ? `, main pid ${d.main_pid}` : ''}`
				: '';
		const dbs = (s.databases || []).map((db) =>
			h('span', {
				class: 'chip',
				text: db.max_connections
					? `${db.name} ≤${db.max_connections}`
					: db.name,
				title: db.max_connections
					? `at most ${db.max_connections} connections`
					: 'no connection cap',
			}),
		);
		const ports = (s.ports || [])
			.concat(s.runtime_ports || [])
			.map((p) => h('span', {class: 'chip', text: String(p)}));
		return h(
			'tr',
			{
				dataset: {
					service: s.name,
					state: s.state,
					health: health.dataset.health,
				},
			},
			h('td', {class: 'name'}, swatch(s.name), s.name),
			h('td', {
				class: 'state',
				dataset: {state: s.state},
				title: procs,
				text: `${s.state === 'running' ? '●' : '○'} ${s.state}`,
			}),
			health,
			chipsCell(ports),
			chipsCell(dbs),
			cpuCell(r, rv.cpus || 0),
			h('td', {
				class: 'num',
				text: rv.memory_mb ? mb(rv.memory_mb) : '—',
				title: 'reserved memory',
			}),
			h('td', {
				class: 'num',
				text: `${r.live_tasks ?? 0}${rv.tasks ? ` / ${rv.tasks}` : ''}`,
				title: 'live tasks / task budget',
			}),
			h('td', {
				class: 'mono',
				text: gpus.length
					? gpus.join(' ')
					: typeof rv.gpus === 'number'
						? String(rv.gpus)
						: '—',
			}),
			denialsCell(d.recent_denials || null),
		);
	}

	function renderServices() {
		fillServices();
		const res = new Map(
			((S.resources && S.resources.services) || []).map((s) => [s.name, s]),
		);
		const running = S.services.filter((s) => s.state === 'running').length;
		setText($('services-sub'), `${S.services.length} services, ${running} running`);
		const rows = S.services.map((s) => {
			const d = S.details[s.name] || {};
			return serviceRow(s, d, res.get(s.name) || d.resources || {});
		});
		if (!rows.length)
			rows.push(
				h(
					'tr',
					null,
					h('td', {
						colspan: 10,
						class: 'muted',
						text: 'no services declared',
					}),
				),
			);
		$('svc-body').replaceChildren(...rows);
	}

	// ---- violations chart ----

	const chart = {u: null, xs: [], raw: {}, baseId: 0, counted: new Set()};

	function stacked() {
		// Series i draws the sum of the shown series i..n; drawn in order, each shorter bar
		// covers the bottom of the previous one, so every type keeps its own band.
		const shown = chart.u
			? chart.u.series.slice(1).map((s) => s.show)
			: CHART_TYPES.map(() => true);
		const out = [];
		let acc = chart.xs.map(() => 0);
		for (let i = CHART_TYPES.length - 1; i >= 0; i--) {
			if (shown[i])
				acc = acc.map((a, k) => a + (chart.raw[CHART_TYPES[i]][k] || 0));
			out[i] = acc.slice();
		}
		return [chart.xs, ...out];
	}

	function chartSize() {
		const w = $('chart').clientWidth || 600;
		return {width: w, height: 210};
	}

	function makeChart() {
		const axis = {
			stroke: '#8b929c',
			grid: {stroke: '#262b33', width: 1},
			ticks: {stroke: '#262b33', width: 1},
			font: '11px system-ui, sans-serif',
		};
		const opts = Object.assign(chartSize(), {
			cursor: {points: {show: false}, drag: {x: false, y: false}},
			legend: {live: true},
			scales: {
				x: {time: true},
				y: {range: (u, lo, hi) => [0, Math.max(4, Math.ceil(hi * 1.15))]},
			},
			axes: [
				Object.assign({}, axis),
				Object.assign({}, axis, {
					size: 40,
					incrs: [
						1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000,
						10000,
					],
					values: (u, vals) => vals.map((v) => String(v)),
				}),
			],
			series: [
				{
					value: (u, v) =>
						v === null
							? '—'
							: new Date(v * 1000).toLocaleTimeString(),
				},
			].concat(
				CHART_TYPES.map((t, i) => ({
					label: t,
					stroke: CHART_COLORS[t],
					fill: CHART_COLORS[t],
					width: 0,
					paths: uPlot.paths.bars({size: [0.85, 24], align: 0}),
					points: {show: false},
					value: (u, v, si, idx) =>
						idx === null || idx === undefined
							? '—'
							: String(
									chart.raw[CHART_TYPES[i]][
										idx
									] || 0,
								),
				})),
			),
			hooks: {setSeries: [() => chart.u && chart.u.setData(stacked())]},
		});
		chart.u = new uPlot(opts, stacked(), $('chart'));
		new ResizeObserver(() => chart.u.setSize(chartSize())).observe($('chart'));
	}

	function drawChart() {
		if (typeof uPlot === 'undefined') {
			$('chart').replaceChildren(
				h('div', {class: 'chart-empty', text: 'uPlot did not load'}),
			);
			return;
		}
		if (!chart.u) makeChart();
		else chart.u.setData(stacked());
		const total = CHART_TYPES.reduce(
			(a, t) => a + chart.raw[t].reduce((x, y) => x + y, 0),
			0,
		);
		setText(
			$('violations-total'),
			`${total} in the last ${Math.round(chart.xs.length)} min`,
		);
	}

	async function refreshTimeline() {
		try {
			const tl = await api('GET', '/api/v1/events/timeline?minutes=60');
			// Events up to the newest id read after the timeline are in it: bump only newer ones.
			const last = await api('GET', '/api/v1/events?limit=1');
			chart.xs = tl.minutes.map((m) => parseTime(m) / 1000);
			chart.raw = {};
			for (const t of CHART_TYPES)
				chart.raw[t] = (tl.series[t] || chart.xs.map(() => 0)).slice();
			chart.baseId = last && last.length ? last[last.length - 1].id : 0;
			chart.counted.clear();
			drawChart();
		} catch (e) {
			setText($('violations-total'), `timeline unavailable: ${e.message}`);
		}
	}

	// A live denial counts at once in its minute; the next timeline fetch corrects any drift.
	function bumpChart(ev) {
		if (
			!CHART_TYPES.includes(ev.type) ||
			!chart.xs.length ||
			ev.id <= chart.baseId ||
			chart.counted.has(ev.id)
		)
			return;
		chart.counted.add(ev.id);
		const minute = Math.floor(parseTime(ev.time) / 60000) * 60;
		if (!Number.isFinite(minute)) return;
		let last = chart.xs[chart.xs.length - 1];
		while (minute > last && minute - last < 3600) {
			last += 60;
			chart.xs.push(last);
			chart.xs.shift();
			for (const t of CHART_TYPES) {
				chart.raw[t].push(0);
				chart.raw[t].shift();
			}
		}
		const idx = chart.xs.indexOf(minute);
		if (idx < 0) return;
		chart.raw[ev.type][idx] += ev.count || 1;
		drawChart();
	}

	// ---- live feed ----

	const feed = {
		rows: [],
		ids: new Set(),
		paused: false,
		pending: [],
		types: new Set(),
		lastId: 0,
	};

	function isDenial(ev) {
		return (
			ev.action === 'denied' ||
			ev.action === 'audited' ||
			CHART_TYPES.includes(ev.type)
		);
	}

	function feedMatches(ev) {
		const type = $('feed-type').value;
		if (type === '@denials' ? !isDenial(ev) : type && ev.type !== type) return false;
		const q = $('feed-service').value.trim().toLowerCase();
		if (!q) return true;
		const hay = [
			ev.service,
			ev.owner,
			ev.port,
			ev.comm,
			ev.type,
			ev.reason,
			ev.detail,
			ev.pid,
			ev.device_path,
			ev.database,
			ev.name,
		]
			.filter((x) => x !== null && x !== undefined)
			.join(' ')
			.toLowerCase();
		return q.split(/\s+/).every((w) => hay.includes(w));
	}

	// A db_address_changed event's from/to are address lists.
	function listOf(v) {
		return Array.isArray(v) ? v.join(', ') || 'none' : String(v);
	}

	function detailOf(ev) {
		const parts = [];
		if (ev.reason) parts.push(ev.reason);
		if (ev.from !== undefined && ev.to !== undefined)
			parts.push(`${listOf(ev.from)} → ${listOf(ev.to)}`);
		if (ev.type === 'db_resolve_failed' && ev.addresses)
			parts.push(`keeping ${listOf(ev.addresses)}`);
		if (ev.device_path)
			parts.push(`${ev.device_path}${ev.access ? ` (${ev.access})` : ''}`);
		if (ev.budget !== undefined && ev.budget !== null)
			parts.push(
				`${ev.live_tasks ?? '?'} tasks, budget ${ev.budget}${ev.killed ? ', killed' : ''}`,
			);
		if (ev.detail) parts.push(ev.detail);
		if (ev.followup) parts.push('follow-up (folded)');
		return parts.join(' · ');
	}

	function feedRow(ev, fresh) {
		const t = parseTime(ev.time);
		// The offender: its service, else the bare command (outside any service, in italics).
		const who = ev.service || (isDenial(ev) ? ev.comm || 'unmanaged' : '');
		const owner =
			ev.owner ||
			(ev.database
				? `db ${ev.database}`
				: ev.reason === 'managed_range'
					? 'range'
					: '');
		const proc = ev.comm
			? `${ev.service ? ev.comm : 'no service'}${ev.pid ? ` pid ${ev.pid}` : ''}`
			: '';
		const detail = [proc, detailOf(ev)].filter(Boolean).join(' · ');
		const target =
			ev.address ||
			ev.device ||
			(ev.port ? `${ev.port}/${ev.proto || 'tcp'}` : '');
		const row = h(
			'tr',
			{
				class: fresh ? 'new' : null,
				title: JSON.stringify(ev, null, 1),
				dataset: {
					id: ev.id,
					type: ev.type,
					action: ev.action || '',
					port: ev.port ?? null,
					service: ev.service || null,
					owner: ev.owner || null,
				},
			},
			h('td', {
				class: 't',
				text: Number.isFinite(t) ? clock(t) : '',
				title: ev.time,
			}),
			h(
				'td',
				null,
				ev.type,
				ev.count > 1
					? h('span', {
							class: 'count',
							text: ` ×${ev.count}`,
							title: `${ev.count} occurrences folded into this event`,
						})
					: null,
			),
			h(
				'td',
				null,
				h('span', {class: ev.service ? 'who' : 'who none', text: who}),
				owner
					? [
							h('span', {class: 'arrow', text: ' → '}),
							h('span', {
								class:
									ev.owner || ev.database
										? 'owner'
										: 'owner none',
								text: owner,
							}),
						]
					: null,
				detail ? h('span', {class: 'detail', text: detail}) : null,
			),
			h('td', {class: 'mono', text: target, title: ev.device_path || target}),
		);
		row.hidden = !feedMatches(ev);
		return row;
	}

	function addType(type) {
		if (feed.types.has(type)) return;
		feed.types.add(type);
		const sel = $('feed-type');
		if (![...sel.options].some((o) => o.value === type))
			sel.append(h('option', {value: type, text: type}));
	}

	function feedInsert(ev, fresh) {
		const row = feedRow(ev, fresh);
		feed.rows.unshift({ev, row});
		const body = $('feed');
		const empty = body.querySelector('.feed-empty');
		if (empty) empty.remove();
		body.prepend(row);
		while (feed.rows.length > FEED_MAX) {
			const old = feed.rows.pop();
			old.row.remove();
			feed.ids.delete(old.ev.id);
		}
	}

	function feedCount() {
		const shown = feed.rows.filter((r) => !r.row.hidden).length;
		setText(
			$('feed-count'),
			`${shown} of ${feed.rows.length} (newest first, last ${FEED_MAX} kept)` +
				(feed.pending.length ? ` · ${feed.pending.length} waiting` : ''),
		);
		setText(
			$('feed-pause'),
			feed.paused
				? `Resume${feed.pending.length ? ` (${feed.pending.length})` : ''}`
				: 'Pause',
		);
	}

	function refilter() {
		for (const r of feed.rows) r.row.hidden = !feedMatches(r.ev);
		feedCount();
	}

	function onEvent(ev, live) {
		if (!ev || typeof ev.id !== 'number' || feed.ids.has(ev.id)) return;
		feed.ids.add(ev.id);
		feed.lastId = Math.max(feed.lastId, ev.id);
		addType(ev.type);
		countViolation(ev);
		if (feed.paused) {
			feed.pending.push(ev);
			if (feed.pending.length > FEED_MAX)
				feed.ids.delete(feed.pending.shift().id);
		} else feedInsert(ev, live);
		feedCount();
		if (!live) return;
		bumpChart(ev);
		if (ev.type === 'bind_denied' && ev.port)
			(cellsByPort.get(ev.port) || []).forEach(flash);
		// Reservations, services, health and denial counts may have changed.
		scheduleRefresh(400);
	}

	function setupFeed() {
		for (const t of KNOWN_TYPES) addType(t);
		$('feed').append(
			h(
				'tr',
				{class: 'feed-empty'},
				h('td', {colspan: 4, text: 'waiting for events…'}),
			),
		);
		$('feed-type').addEventListener('change', refilter);
		$('feed-service').addEventListener('input', refilter);
		$('feed-pause').addEventListener('click', () => {
			feed.paused = !feed.paused;
			$('feed-pause').dataset.paused = String(feed.paused);
			if (!feed.paused) {
				feed.pending.splice(0).forEach((ev) => feedInsert(ev, true));
			}
			feedCount();
		});
		feedCount();
	}

	// ---- event stream ----

	let es = null,
		esRetry = null,
		esOpenedAt = 0;

	function connectEvents() {
		if (es) es.close();
		// First time: the recent backlog. After a hard failure: everything we missed. (The
		// browser's own reconnects send Last-Event-ID and resume by themselves.)
		const q = feed.lastId ? `since=${feed.lastId}` : `limit=${FEED_BACKLOG}`;
		es = new EventSource(`/api/v1/events/stream?${q}`);
		setConn('sse-state', 'connecting', 'events: connecting', '');
		es.onopen = () => {
			esOpenedAt = Date.now();
			setConn('sse-state', 'live', 'events: live', 'SSE connected');
		};
		es.onmessage = (m) => {
			let ev;
			try {
				ev = JSON.parse(m.data);
			} catch (e) {
				return;
			}
			// Live: newer than what the page saw when it loaded (the backlog is older). Without
			// that mark, whatever follows the opening burst.
			onEvent(
				ev,
				feedBaseline !== null
					? ev.id > feedBaseline
					: Date.now() - esOpenedAt > 300,
			);
		};
		es.onerror = () => {
			if (es.readyState === EventSource.CLOSED) {
				setConn(
					'sse-state',
					'down',
					'events: down',
					'stream closed; retrying in 3 s',
				);
				es.close();
				es = null;
				clearTimeout(esRetry);
				esRetry = setTimeout(connectEvents, 3000);
			} else {
				setConn(
					'sse-state',
					'reconnecting',
					'events: reconnecting',
					'the browser retries on its own',
				);
			}
		};
	}

	let feedBaseline = null; // the newest event id when the page loaded


	// ---- cluster view (machine registry, etcd backend) ----

	// Denials seen in the event stream (backlog and live), by the host that recorded them: a
	// peer's events carry its host (MCP peers), this host's carry ours.
	const violationsByHost = new Map();
	const cluster = {hosts: null, where: {}, error: null};
	let clusterBusy = false;

	function countViolation(ev) {
		if (!isDenial(ev) || !ev.host) return;
		violationsByHost.set(ev.host, (violationsByHost.get(ev.host) || 0) + 1);
	}

	// With the file backend /api/v1/hosts answers an error: that error is what the view shows.
	async function refreshCluster() {
		if (clusterBusy) return;
		clusterBusy = true;
		try {
			const hosts = await api('GET', '/api/v1/hosts');
			const names = S.services.map((x) => x.name);
			const where = await Promise.all(
				names.map((n) =>
					api('GET', `/api/v1/services/${encodeURIComponent(n)}/where`).catch(
						(e) => ({error: e.message}),
					),
				),
			);
			cluster.hosts = hosts;
			cluster.where = Object.fromEntries(names.map((n, i) => [n, where[i]]));
			cluster.error = null;
		} catch (e) {
			cluster.hosts = null;
			cluster.where = {};
			cluster.error = e.message;
		} finally {
			clusterBusy = false;
		}
		renderCluster();
	}

	// "used / capacity" (measured by the host's caelumd; the capacity alone when it measures
	// nothing), with what the services running there reserve in the tooltip.
	function usageOf(used, cap, alloc, fmt) {
		if (cap === undefined || cap === null) return h('td', {text: '—'});
		return h('td', {
			class: 'capacity',
			text: used === undefined || used === null ? fmt(cap) : `${fmt(used)} / ${fmt(cap)}`,
			title: alloc === undefined || alloc === null ? '' : `reserved by the services running here: ${fmt(alloc)}`,
		});
	}

	function hostRow(hst, runsHere) {
		const cap = hst.capacity || {},
			use = hst.usage || {};
		return h(
			'tr',
			{dataset: {host: hst.name, state: hst.state}},
			h('td', {class: 'name', text: hst.name}),
			h('td', {class: 'state', dataset: {state: hst.state}, text: hst.state}),
			h('td', {text: (hst.addresses || []).join(', ') || '—'}),
			usageOf(use.cpus, cap.cpus, use.cpus_allocated, (x) => num(x)),
			usageOf(use.memory_mb, cap.memory_mb, use.memory_mb_allocated, (x) => mb(x)),
			h('td', {
				class: 'usage',
				text:
					use.services === undefined ? '—' : `${use.running} / ${use.services}`,
			}),
			h('td', {text: use.reservations === undefined ? '—' : String(use.reservations)}),
			chipsCell(runsHere.map((n) => h('span', {class: 'chip', dataset: {service: n}}, swatch(n), n))),
			h('td', {
				class: 'violations',
				dataset: {count: violationsByHost.get(hst.name) || 0},
				text: String(violationsByHost.get(hst.name) || 0),
			}),
			h('td', {
				class: 'muted',
				text: hst.last_seen ? ago(parseTime(hst.last_seen)) : '—',
			}),
		);
	}

	function whereRow(name, w) {
		const cell = w.error
			? h('td', {class: 'cluster-error', text: w.error})
			: h(
					'td',
					{class: 'hosts'},
					w.length
						? w.map((x) =>
								h('span', {
									class: 'chip',
									dataset: {host: x.host, state: x.state},
									text: `${x.host}${(x.ports || []).length ? ` (${x.ports.join(', ')})` : ''}`,
									title: x.health && x.health.state,
								}),
							)
						: h('span', {class: 'muted', text: 'not running on any host'}),
				);
		return h('tr', {dataset: {service: name}}, h('td', {class: 'name'}, swatch(name), name), cell);
	}

	function renderCluster() {
		const err = $('cluster-error');
		err.hidden = !cluster.error;
		setText(err, cluster.error || '');
		if (!cluster.hosts) {
			setText($('cluster-sub'), 'no machine registry');
			$('cluster-hosts').replaceChildren();
			$('cluster-where').replaceChildren();
			return;
		}
		const runsOn = new Map();
		for (const [svc, w] of Object.entries(cluster.where))
			if (Array.isArray(w))
				for (const x of w) runsOn.set(x.host, (runsOn.get(x.host) || []).concat(svc));
		const up = cluster.hosts.filter((x) => x.state === 'up').length;
		setText($('cluster-sub'), `${cluster.hosts.length} hosts, ${up} up`);
		$('cluster-hosts').replaceChildren(
			...cluster.hosts.map((x) => hostRow(x, runsOn.get(x.name) || [])),
		);
		$('cluster-where').replaceChildren(
			...Object.entries(cluster.where).map(([n, w]) => whereRow(n, w)),
		);
	}

	// ---- start ----

	async function start() {
		setupToken();
		setupFeed();
		setupPortForm();
		$('verify-btn').addEventListener('click', (ev) =>
			action(ev.currentTarget, 'self-verification', 'POST', '/api/v1/verify'),
		);
		$('reload-btn').addEventListener('click', (ev) =>
			action(ev.currentTarget, 'reload', 'POST', '/api/v1/reload'),
		);
		await refresh();
		if (S.status && S.status.events) feedBaseline = S.status.events.last_id;
		connectEvents();
		refreshTimeline();
		setInterval(() => {
			if (!document.hidden) refresh();
		}, POLL_MS);
		setInterval(() => {
			if (!document.hidden) refreshTimeline();
		}, TIMELINE_MS);
		setInterval(() => {
			// Keep "N s ago" honest between polls.
			if (S.status) renderComponents();
		}, 10000);
		document.addEventListener('visibilitychange', () => {
			if (!document.hidden) {
				refresh();
				refreshTimeline();
			}
		});
	}

	start();
})();
