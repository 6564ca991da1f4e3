import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api } from "../../api/client";
import type { Project } from "../../api/types";
import { ErrorBox, Loading } from "../../components/Feedback";
import { Link, navigate } from "../../lib/router";

/** The projects the user can see, and a form to create one. */
export function ProjectList() {
  const client = useQueryClient();
  const projects = useQuery({ queryKey: ["projects"], queryFn: () => api.get<Project[]>("/api/v1/projects") });
  const [name, setName] = useState("");
  const create = useMutation({
    mutationFn: (n: string) => api.post<Project>("/api/v1/projects", { name: n }),
    onSuccess: (p) => {
      void client.invalidateQueries({ queryKey: ["projects"] });
      navigate(`/projects/${p.id}/agent`);
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (name.trim()) create.mutate(name.trim());
  };
  return (
    <section aria-labelledby="projects-h">
      <h1 id="projects-h">Projects</h1>
      {projects.isPending && <Loading what="projects" />}
      <ErrorBox error={projects.error} />
      <ul className="project-list">
        {projects.data?.map((p) => (
          <li key={p.id} className="card">
            <Link to={`/projects/${p.id}`}>{p.name}</Link>
            <span className="muted">{p.description}</span>
            {p.agent.enabled && <span className="pill">agent on</span>}
          </li>
        ))}
        {projects.data?.length === 0 && <li className="muted">No projects yet.</li>}
      </ul>
      <form onSubmit={submit} className="inline-form" aria-label="Create a project">
        <label>
          New project
          <input value={name} onChange={(e) => setName(e.target.value)} placeholder="Name" />
        </label>
        <button type="submit" disabled={create.isPending}>Create project</button>
      </form>
      <ErrorBox error={create.error} />
    </section>
  );
}
