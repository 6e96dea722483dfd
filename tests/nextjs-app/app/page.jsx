import Link from "next/link";

const POSTS = ["hello", "other"];

export default function Home() {
  return (
    <main>
      <h1>Posts</h1>
      <ul>
        {POSTS.map((slug) => (
          <li key={slug}>
            <Link href={`/blog/${slug}`}>{slug}</Link>
          </li>
        ))}
      </ul>
    </main>
  );
}
