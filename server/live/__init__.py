"""What happens during a lesson on this node: the Session, its seats and
recording, the manager of this node's sessions, the deployment seam, the
debrief room.
"""
