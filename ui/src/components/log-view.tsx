import type { JSX } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { LogLine } from '../lib/log-buffer';

/**
 * A log that stays responsive with tens of thousands of lines: only the rows in view (plus a
 * margin) are in the DOM, each one line high (long lines scroll sideways). While the view is at
 * the bottom it follows new lines; scrolling up stops following until it is back at the bottom.
 */
const ROW_PX = 20;
const OVERSCAN = 30;

export function LogView(props: { lines: readonly LogLine[]; count: number; label: string }): JSX.Element {
  const box = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(400);
  const follow = useRef(true);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const observer = new ResizeObserver(() => setHeight(el.clientHeight));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  // After new lines: stay at the bottom if we were there.
  useLayoutEffect(() => {
    const el = box.current;
    if (el && follow.current) {
      el.scrollTop = el.scrollHeight;
      setScrollTop(el.scrollTop);
    }
  }, [props.count]);

  const first = Math.max(0, Math.floor(scrollTop / ROW_PX) - OVERSCAN);
  const last = Math.min(props.count, Math.ceil((scrollTop + height) / ROW_PX) + OVERSCAN);
  const rows: JSX.Element[] = [];
  for (let i = first; i < last; i++) {
    const line = props.lines[i]!;
    rows.push(<div class="log-line" key={line.seq} style={{ top: `${i * ROW_PX}px` }}><span class="log-time">{line.time.slice(11, 23)}</span> {line.message}</div>);
  }
  return (
    <div
      ref={box}
      class="log"
      role="log"
      aria-label={props.label}
      aria-live="off"
      tabIndex={0}
      data-lines={props.count}
      onScroll={(e) => {
        const el = e.currentTarget;
        follow.current = el.scrollTop + el.clientHeight >= el.scrollHeight - ROW_PX * 2;
        setScrollTop(el.scrollTop);
      }}
    >
      <div class="log-inner" style={{ height: `${props.count * ROW_PX}px` }}>{rows}</div>
    </div>
  );
}
