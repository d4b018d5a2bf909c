// The parts of Engine API documents (API 1.41+) that discovery reads. Every
// field is optional: the daemon omits many of them depending on state and
// version, and the translators must cope.

export interface EndpointSettings {
  NetworkID?: string
  IPAddress?: string
  GlobalIPv6Address?: string
  Aliases?: string[] | null
}

export interface PortBinding {
  HostIp?: string
  HostPort?: string
}

/** GET /containers/{id}/json */
export interface ContainerInspect {
  Id: string
  Name?: string
  /** ISO 8601 creation time. */
  Created?: string
  State?: {
    Status?: string
    Running?: boolean
    Paused?: boolean
    Restarting?: boolean
    StartedAt?: string
    Health?: { Status?: string } | null
  }
  Config?: {
    Hostname?: string
    Labels?: Record<string, string> | null
    ExposedPorts?: Record<string, unknown> | null
  }
  HostConfig?: { NetworkMode?: string }
  NetworkSettings?: {
    Ports?: Record<string, PortBinding[] | null> | null
    Networks?: Record<string, EndpointSettings> | null
  }
}

/** GET /containers/json */
export interface ContainerSummary {
  Id: string
  Names?: string[]
  Labels?: Record<string, string> | null
  State?: string
}

/** One object of GET /events */
export interface DockerEvent {
  Type?: string
  Action?: string
  Actor?: { ID?: string; Attributes?: Record<string, string> }
  time?: number
  timeNano?: number
}

/** GET /services */
export interface SwarmService {
  ID: string
  /** ISO 8601 creation time. */
  CreatedAt?: string
  Version?: { Index?: number }
  Spec?: {
    Name?: string
    Labels?: Record<string, string> | null
    Mode?: { Replicated?: { Replicas?: number }; Global?: object }
    TaskTemplate?: { Networks?: Array<{ Target?: string; Aliases?: string[] }> | null }
    EndpointSpec?: { Mode?: string; Ports?: SwarmPort[] | null }
  }
  Endpoint?: {
    Spec?: { Mode?: string; Ports?: SwarmPort[] | null }
    Ports?: SwarmPort[] | null
    VirtualIPs?: Array<{ NetworkID?: string; Addr?: string }> | null
  }
  UpdateStatus?: { State?: string } | null
}

export interface SwarmPort {
  Protocol?: string
  TargetPort?: number
  PublishedPort?: number
  PublishMode?: string
}

/** GET /tasks */
export interface SwarmTask {
  ID: string
  ServiceID?: string
  NodeID?: string
  Slot?: number
  DesiredState?: string
  Status?: { State?: string; Timestamp?: string; ContainerStatus?: { ContainerID?: string } }
  NetworksAttachments?: Array<{ Network?: { ID?: string; Spec?: { Name?: string } }; Addresses?: string[] | null }> | null
}

/** GET /networks/{id} (the fields the swarm source needs to name a network) */
export interface NetworkInspect {
  Id: string
  Name?: string
}
