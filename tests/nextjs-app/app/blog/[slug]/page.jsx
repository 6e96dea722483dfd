import Link from "next/link";

// Rendered on every request: each origin fetch is a real render with a new marker, so the test can tell
// a cached page from a new one. Next.js marks such pages `Cache-Control: private, no-cache, no-store`.
export const dynamic = "force-dynamic";

let renders = 0;

export default async function Post({ params }) {
  const { slug } = await params;
  renders += 1;
  const marker = `${Date.now()}-${renders}`;
  return (
    <main>
      <h1>Post {slug}</h1>
      <p id="render">{`render-marker:${marker}:end`}</p>
      <Link href="/">home</Link>
    </main>
  );
}
