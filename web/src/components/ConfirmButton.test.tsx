import { fireEvent, render, screen } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { ConfirmButton } from "./ConfirmButton";

describe("ConfirmButton", () => {
  it("asks before acting and can be backed out of", () => {
    const act = vi.fn();
    render(<ConfirmButton label="Cancel" question="Stop the agent?" onConfirm={act} />);
    fireEvent.click(screen.getByRole("button", { name: "Cancel" }));
    expect(act).not.toHaveBeenCalled();
    fireEvent.click(screen.getByRole("button", { name: "No" }));
    fireEvent.click(screen.getByRole("button", { name: "Cancel" }));
    fireEvent.click(screen.getByRole("button", { name: "Yes, cancel" }));
    expect(act).toHaveBeenCalledTimes(1);
  });
});
